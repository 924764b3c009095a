"""The kiosk's own chaos tests, written with chaoslab's pytest plugin (installed with the wheel; no conftest).

The resilient kiosk's breaker goes OPEN -> HALF_OPEN -> CLOSED around a Postgres partition; the fragile one has
no breaker, so the same assertion fails (the negative control)."""

import asyncio

import pytest

from kiosk import Kiosk
from lab.testing import assert_breaker_cycle, assert_recovered

pytestmark = pytest.mark.chaos


async def _drive(recorder, call, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            await recorder.call(call)
        except Exception:
            pass
        await asyncio.sleep(0.02)


async def _through_a_partition(lab_stack, chaos, lab_history, kiosk: Kiosk) -> None:
    await kiosk.start(lab_stack.pg_dsn)
    try:
        await _drive(lab_history, kiosk.stock, 0.3)
        async with chaos.partition("postgres"):
            await _drive(lab_history, kiosk.stock, 2.0)
        await _drive(lab_history, kiosk.stock, 2.0)
    finally:
        await kiosk.close()


async def test_resilient_kiosk_cycles_its_breaker(lab_stack, chaos, lab_history):
    kiosk = Kiosk(fragile=False)
    lab_history.observe("pg", kiosk.breakers)
    await _through_a_partition(lab_stack, chaos, lab_history, kiosk)
    assert_breaker_cycle(lab_history.history, "pg", wait_open_s=1.0, tolerance_s=0.2)
    assert_recovered(lab_history.history, "pg")


async def test_fragile_kiosk_fails_the_breaker_assertion(lab_stack, chaos, lab_history):
    kiosk = Kiosk(fragile=True)
    lab_history.no_breaker("pg")
    await _through_a_partition(lab_stack, chaos, lab_history, kiosk)
    assert_breaker_cycle(lab_history.history, "pg", wait_open_s=1.0)
