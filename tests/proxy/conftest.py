import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/proxy/" in str(item.fspath) and not any(m.name in {"stress", "property", "e2e"} for m in item.iter_markers()):
            item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.proxy)
