"""pytest plugin (entry point ``pytest11``): fixtures for testing hub plugins.

Loaded automatically wherever hub-core is installed, so it only adds
fixtures and a marker; the conformance suite itself is opt-in by subclassing
``hub_core.testing.ConformanceSuite``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub_core.bus import TypedEventBus
from hub_core.registry import ExchangeRegistry


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hub_conformance: a test of the hub's plugin conformance suite"
    )


@pytest.fixture
def hub_bus() -> TypedEventBus:
    """A fresh event bus."""
    return TypedEventBus()


@pytest.fixture
def hub_registry() -> Iterator[ExchangeRegistry]:
    """An empty registry (no entry points loaded): register plugins explicitly."""
    yield ExchangeRegistry()
