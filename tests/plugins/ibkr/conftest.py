"""Fixtures of the IBKR plugin tests: anyio on asyncio, the simulated TWS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub_plugin_ibkr.simulator import TwsSimulator

SYMBOLS = ["AAPL", "MSFT"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    async with TwsSimulator(SYMBOLS, rate=200, seed=5) as s:
        yield s
