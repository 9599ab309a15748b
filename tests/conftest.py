"""Shared test set-up.

Unit tests never depend on whichever plugins happen to be installed: they
build an ``ExchangeRegistry`` and register plugins explicitly. Async tests use
anyio's pytest plugin on asyncio.
"""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
