import asyncio

import pytest

try:
    import uvloop
except ImportError:  # uvloop is optional for lab.proxy
    uvloop = None


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/proxy/" in str(item.fspath) and not any(
            m.name in {"stress", "property", "e2e", "unit"} for m in item.iter_markers()
        ):
            item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.proxy)


def pytest_asyncio_loop_factories(config, item):
    """Every async proxy test runs on plain asyncio and, where installed, on uvloop (the CLI's loop)."""
    factories = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories
