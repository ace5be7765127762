"""Benchmarks write their saved runs only where --benchmark-storage says (never by default)."""

from __future__ import annotations

import tempfile

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """pytest-benchmark makes its storage folder at start-up: keep it out of the checkout."""
    if getattr(config.option, "benchmark_storage", None) == "file://./.benchmarks":
        config.option.benchmark_storage = f"file://{tempfile.gettempdir()}/dtgan-benchmarks"
