"""The runner's probes of the stack itself, before and after a case: traffic flows through the proxy, and
every fault healed. Both record ``probe`` events; the first raises StackError when the stack is not ready."""

from __future__ import annotations

import asyncio

from ..config import Settings
from ..errors import LabError, StackError
from ..faults import FaultLedger
from ..proxy.client import ToxiproxyClient, ToxiproxyError
from ..stack import backend, health
from .history import FAIL, OK, History


async def steady_state(settings: Settings, history: History, components: tuple[str, ...]) -> None:
    """Both servers answer through the proxy, and with the proxy down no request gets through.

    "Gets through" means a real protocol exchange, not a TCP connect: where a port is
    published by Docker, its forwarder accepts every connection and only then closes it.
    """
    async def pg() -> str:
        return await health.postgres_ready(settings.pg_proxy_port, password=settings.pg_password, timeout_s=1.0)

    async def kafka() -> str:
        return await health.kafka_ready(settings.kafka_proxy_port, timeout_s=1.0)

    exchanges = {"pg": ("postgres", pg), "kafka": ("kafka", kafka)}
    chosen = {component: exchanges[component] for component in components}
    stack = backend.recorded(settings)
    # what the path from the clients to the proxy lets through, for the checks that depend on it
    history.add("stack", backend=stack.name, resets_reach_clients=stack.resets_reach_clients())
    try:
        for component, (_, exchange) in chosen.items():
            history.add("probe", OK, name=f"steady.{component}", evidence=await exchange())
        client = ToxiproxyClient(settings.proxy_url)
        for proxy, _ in chosen.values():
            await client.disable(proxy)
        try:
            for component, (_, exchange) in chosen.items():
                try:
                    evidence = await exchange()
                except health.Unhealthy:
                    continue
                raise StackError(f"{component}: answered with its proxy disabled ({evidence}): traffic bypasses "
                                 f"the proxy")
        finally:
            for proxy, _ in chosen.values():
                await client.enable(proxy)
        history.add("probe", OK, name="steady.proxy", evidence="with the proxies disabled no request gets through")
    except (health.Unhealthy, ToxiproxyError) as err:
        raise StackError(f"steady state not reached: {err} (is the stack up? `python -m lab up`)") from err


async def faults_healed(settings: Settings, ledger: FaultLedger, history: History) -> None:
    """The stack as ``up`` left it: ledger clean, proxies enabled without toxics, the backend's components
    running, not paused, not capped."""
    problems = []
    unhealed = ledger.unhealed()
    if unhealed:
        problems.append(f"{len(unhealed)} faults still in the ledger: {[e['key'] for e in unhealed]}")
    try:
        for name, proxy in (await ToxiproxyClient(settings.proxy_url).proxies()).items():
            if proxy.toxics:
                problems.append(f"proxy {name} still has toxics {[t.name for t in proxy.toxics]}")
            if not proxy.enabled:
                problems.append(f"proxy {name} is disabled")
    except ToxiproxyError as err:
        problems.append(f"proxy unreachable: {err}")
    try:
        problems += await asyncio.to_thread(backend.running(settings).problems)
    except LabError as err:
        problems.append(str(err))
    history.add("probe", FAIL if problems else OK, name="faults.healed",
                evidence="; ".join(problems) or "no toxics, every proxy enabled, every component running, "
                                                "ledger clean")
