"""What every toxic is: a frozen set of attributes and one ``pipe`` coroutine.

A toxic type is a dataclass whose fields are its JSON attributes, in the order
Toxiproxy prints them, each with the Go type it is decoded as (``int64`` or
``int``). ``pipe(stub)`` moves chunks from ``stub.read()`` to ``stub.write()``
until the stream ends (then ``stub.close()``) or it is interrupted (then it
writes whatever it holds and lets ``Interrupted`` propagate).

Optional abilities, as in Toxiproxy, are plain attributes a toxic opts into:
``new_state()`` for per-connection state kept across updates, and
``cleanup(stub)`` run when the toxic is removed from a live connection.

Our extension: a *two-way* toxic, one that speaks a protocol, has
``pipe_requests(stub)`` and ``pipe_responses(stub)`` instead of ``pipe``; it runs
on both directions of each connection, with one shared ``new_state()`` (see
``Stub``). ``check()`` raises ``ValueError`` for attributes that make no sense;
the API answers 400 with its text.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol, TypeGuard

from ..gojson import Float32
from ..stream import Stub


@dataclasses.dataclass(frozen=True)
class Toxic:
    type_name: ClassVar[str] = ""
    go_struct: ClassVar[str] = ""
    #: JSON key -> Go type, in the order Toxiproxy prints the attributes.
    go_types: ClassVar[dict[str, str]] = {}

    async def pipe(self, stub: Stub) -> None:
        raise NotImplementedError

    def attributes(self) -> dict[str, Any]:
        return {
            key: Float32(getattr(self, key)) if go_type == "float32" else getattr(self, key)
            for key, go_type in self.go_types.items()
        }

    def merged(self, changes: dict[str, Any]) -> "Toxic":
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """Raise ValueError naming what is wrong with these attributes (our types only)."""


class TwoWayToxic(Protocol):
    """What a two-way toxic has in place of ``pipe`` (see the module docstring)."""

    def new_state(self, mid_stream: bool = False) -> Any: ...

    async def pipe_requests(self, stub: Stub) -> None: ...

    async def pipe_responses(self, stub: Stub) -> None: ...


def is_two_way(toxic: Toxic) -> TypeGuard[TwoWayToxic]:
    """Whether ``toxic`` speaks a protocol: it has ``pipe_requests`` (and so the rest of ``TwoWayToxic``)."""
    return hasattr(toxic, "pipe_requests")


def as_two_way(toxic: Toxic) -> TwoWayToxic:
    """``toxic`` as a two-way toxic; AttributeError, as the missing method would raise, when it is not one."""
    if not is_two_way(toxic):
        raise AttributeError(f"{type(toxic).__name__!r} object has no attribute 'pipe_requests'")
    return toxic


async def pass_through(stub: Stub) -> None:
    """The noop pipe: also what a toxic runs as when its toxicity roll fails."""
    while True:
        chunk = await stub.read()
        if chunk is None:
            stub.close()
            return
        stub.write(chunk)
