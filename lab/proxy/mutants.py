"""Proxy mutants: lab.proxy with one property of its toxics broken, so a scenario check can be shown to see it.

The client mutants (``lab/scenario/mutants.py``) prove that the checks catch a
client that misbehaves; these prove that they catch a fault proxy that does not
inject what it was asked to: a check that passes whether the latency toxic
delays by 400 ms or 200 ms does not measure the fault it relies on.

A mutant is chosen once, when the server starts (``LAB_PROXY_MUTANT=NAME``, read
by ``lab/proxy/cli.py``; ``LAB_PROXY_MUTANT=latency_halved python -m lab up``
passes it to the stack's proxy). It patches the shipped classes by attribute
name, in that process only; a name that no longer exists is an error at start,
never a mutant that silently changes nothing. Guaranteed: each mutant changes one
property and nothing else, and without ``LAB_PROXY_MUTANT`` nothing is patched.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .link import Link
from .proxy import Proxy
from .toxics.bandwidth import Bandwidth
from .toxics.latency import Latency
from .toxics.reset_peer import ResetPeer

ENV_VAR = "LAB_PROXY_MUTANT"


class UnknownMutant(ValueError):
    """The name given is not a proxy mutant (the message lists the ones there are)."""


class StalePatch(RuntimeError):
    """A mutant patches an attribute the proxy no longer has: the mutant must follow the code."""


Patch = tuple[type, str, Callable[[Any], Any]]  # (class, attribute, original -> replacement)


@dataclasses.dataclass(frozen=True)
class ProxyMutant:
    name: str
    breaks: str  # the property, in a sentence
    patches: tuple[Patch, ...]


def _latency_halved(original: Callable[..., float]) -> Callable[..., float]:
    def delay_s(self: Latency, stub: Any) -> float:
        return original(self, stub) / 2
    return delay_s


def _bandwidth_owed_halved(original: Callable[..., Any]) -> Callable[..., Any]:
    """Each byte is owed half its time: the pipe runs as if the rate were twice the configured one."""
    def pipe(self: Bandwidth, stub: Any) -> Any:
        return original(dataclasses.replace(self, rate=self.rate * 2), stub)
    return pipe


class _FinStub:
    """A stub whose reset ends the stream (FIN) instead of aborting the connection (RST)."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    def reset(self) -> None:
        self._stub.close()


def _reset_sends_fin(original: Callable[..., Any]) -> Callable[..., Any]:
    def pipe(self: ResetPeer, stub: Any) -> Any:
        return original(self, _FinStub(stub))
    return pipe


def _other(direction: str) -> str:
    return "downstream" if direction == "upstream" else "upstream"


def _link_both_directions(original: Callable[..., None]) -> Callable[..., None]:
    """A one-way toxic is added to its own direction and to the other one."""
    def add_toxic(self: Link, defn: Any) -> None:
        original(self, defn)
        if self.directions and not hasattr(defn.toxic, "pipe_requests"):
            self.directions[_other(defn.direction)].add_toxic(defn)
    return add_toxic


def _proxy_both_directions(original: Callable[..., list[str]]) -> Callable[..., list[str]]:
    """Updates and removals reach both directions, so the heal still removes what the mutant added."""
    def directions(self: Proxy, defn: Any) -> list[str]:
        return ["upstream", "downstream"]
    return directions


def _removal_spares_open_links(original: Callable[..., Any]) -> Callable[..., Any]:
    """The toxic leaves the proxy's list (the API shows it gone) but keeps running on open connections."""
    async def remove_toxic(self: Proxy, name: str) -> Any:
        return self.toxics.remove(name)
    return remove_toxic


MUTANTS: dict[str, ProxyMutant] = {m.name: m for m in (
    ProxyMutant("direction_ignored", "a one-way toxic acts on both directions, not only on its stream",
                ((Link, "add_toxic", _link_both_directions), (Proxy, "_directions", _proxy_both_directions))),
    ProxyMutant("latency_halved", "the latency toxic delays by half its latency (and jitter)",
                ((Latency, "delay_s", _latency_halved),)),
    ProxyMutant("bandwidth_owed_halved", "the bandwidth toxic waits half the time its bytes owe (twice the rate)",
                ((Bandwidth, "pipe", _bandwidth_owed_halved),)),
    ProxyMutant("reset_peer_sends_fin", "reset_peer closes the connection with a FIN instead of a RST",
                ((ResetPeer, "pipe", _reset_sends_fin),)),
    ProxyMutant("toxic_removal_spares_open_links", "removing a toxic takes it off the proxy's list but leaves "
                "it acting on the connections already open", ((Proxy, "remove_toxic", _removal_spares_open_links),)),
)}


def apply(name: str) -> ProxyMutant:
    """Patch this process's proxy classes with the mutant called ``name`` and return it.

    Every attribute is checked before any is patched, so a stale mutant changes nothing."""
    try:
        chosen = MUTANTS[name]
    except KeyError:
        raise UnknownMutant(f"unknown proxy mutant {name!r} ({ENV_VAR}); available: {', '.join(MUTANTS)}") from None
    for cls, attribute, _ in chosen.patches:
        if attribute not in vars(cls):
            raise StalePatch(f"proxy mutant {name!r} patches {cls.__name__}.{attribute}, which no longer exists")
    for cls, attribute, make in chosen.patches:
        setattr(cls, attribute, make(vars(cls)[attribute]))
    return chosen
