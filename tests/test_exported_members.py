"""The public names of modeltap, modeltap.read and modeltap.serving, pinned: a name added,
dropped or left out of `__all__` fails here (as httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from types import ModuleType

import pytest

import modeltap
import modeltap.errors
import modeltap.read
import modeltap.serving

PUBLIC = {
    "modeltap": [
        "BadRequestError",
        "BasicCorrelationContext",
        "BufferFullError",
        "CollectionDisabledError",
        "CollectionError",
        "Collector",
        "CollectorLimitError",
        "ConfigError",
        "CorrelationContext",
        "ModeltapError",
        "NotFoundError",
        "ObjectExistsError",
        "StorageError",
        "__version__",
        "configure",
        "flush",
        "join",
        "load",
        "shutdown",
        "stats",
    ],
    "modeltap.read": ["SKIPPED", "NotFoundError", "join", "load", "spark"],
    "modeltap.serving": ["MlflowModel", "ScoreScript", "create_app"],
}


NOT_API = {"TYPE_CHECKING"}  # imported from typing for annotations


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_all_is_the_pinned_list(name: str) -> None:
    assert importlib.import_module(name).__all__ == PUBLIC[name]


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_exported_name_imports(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert getattr(module, member) is not None, member
    assert set(module.__all__) <= set(dir(module))


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_nothing_public_is_left_out_of_all(name: str) -> None:
    """Every object of modeltap's own that the namespace holds under a public name is in
    __all__ (submodules, and names from other packages such as typing's, are not API)."""
    module = importlib.import_module(name)
    checked = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or attr in NOT_API or isinstance(value, ModuleType):
            continue
        owner = getattr(value, "__module__", None) or name  # a constant: the module's own
        if owner.split(".")[0] != "modeltap":
            continue
        assert attr in module.__all__, f"{name}.{attr} is public but not in __all__"
        checked.append(attr)
    # the check saw every exported name (load and join only once first used: lazy)
    assert set(checked) >= set(PUBLIC[name]) - {"__version__", "load", "join"}


def test_every_error_of_the_tree_is_exported() -> None:
    tree = [
        value
        for value in vars(modeltap.errors).values()
        if inspect.isclass(value) and issubclass(value, modeltap.ModeltapError)
    ]
    assert {cls.__name__ for cls in tree} == set(modeltap.errors.__all__)
    for cls in tree:
        assert getattr(modeltap, cls.__name__) is cls
    assert modeltap.read.NotFoundError is modeltap.NotFoundError
    from modeltap.read._source import NotFoundError  # where it was defined before

    assert NotFoundError is modeltap.NotFoundError


def test_import_modeltap_stays_light() -> None:
    """load and join are exported without importing the reader (pandas, pyarrow, DuckDB)."""
    code = (
        "import sys, modeltap; assert 'load' in dir(modeltap); "
        "print(sorted(m for m in ('modeltap.read', 'pyarrow', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
