"""Each module's ``__all__`` stays in step with what it defines (httpx keeps a test like this).

Every name in ``__all__`` exists, and every public class or function a module defines itself is in its
``__all__``. Modules without ``__all__`` are not checked. lab/proxy is left to its own owner for now
(lab.proxy.api lists none of its helper functions: see the README status).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import lab

pytestmark = pytest.mark.unit

NOT_YET = ("lab.proxy",)


def _modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(lab.__path__, "lab.")]
    return sorted(n for n in names if not n.endswith("__main__") and not n.startswith(NOT_YET))


def _defined(module) -> set[str]:
    return {name for name, obj in vars(module).items() if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__}


@pytest.mark.parametrize("name", _modules())
def test_all_lists_what_the_module_defines(name):
    module = importlib.import_module(name)
    if not hasattr(module, "__all__"):
        pytest.skip(f"{name} has no __all__")
    listed = set(module.__all__)
    assert len(listed) == len(module.__all__), f"{name}.__all__ lists a name twice"
    assert sorted(n for n in listed if not hasattr(module, n)) == [], f"{name}.__all__ names what it lacks"
    assert sorted(_defined(module) - listed) == [], f"{name} defines public names its __all__ does not list"


def test_the_error_tree_is_all_in_lab_errors():
    """Every LabError subclass lab defines lives in lab/errors.py and is drawn in its docstring."""
    import lab.errors

    for name in _modules():
        importlib.import_module(name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    ours = {c for c in subclasses(lab.errors.LabError) if c.__module__.startswith("lab.")}
    assert sorted(c.__qualname__ for c in ours if c.__module__ != "lab.errors") == []
    assert sorted(c.__name__ for c in ours if c.__name__ not in lab.errors.__doc__) == []
