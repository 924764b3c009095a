import asyncio

import pytest

try:
    import uvloop
except ImportError:  # uvloop is optional for lab.proxy
    uvloop = None


def pytest_collection_modifyitems(items):
    """Marks this directory's tests ``proxy`` (and ``integration`` unless they have a type of their own).

    The hook sees every collected item of the session, not only this directory's: the path test keeps the
    markers off the rest (``-m proxy`` once collected the whole suite)."""
    for item in items:
        if "tests/proxy/" not in str(item.fspath):
            continue
        if not any(m.name in {"stress", "property", "e2e", "unit"} for m in item.iter_markers()):
            item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.proxy)


def pytest_asyncio_loop_factories(config, item):
    """Every async proxy test runs on plain asyncio and, where installed, on uvloop (the CLI's loop)."""
    factories = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories
