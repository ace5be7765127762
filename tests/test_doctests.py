"""Every doctest in the package runs here (examples in docstrings must stay true)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import dtgan_plugin


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(dtgan_plugin.__path__, "dtgan_plugin."):
        spec = importlib.util.find_spec(info.name)
        origin = getattr(spec, "origin", None) if spec else None
        if origin and origin.endswith(".py") and ">>>" in open(origin, encoding="utf-8").read():
            names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_the_package_has_doctests() -> None:
    assert len(MODULES) >= 2, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0, name
