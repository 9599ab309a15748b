"""Fixtures of the IBKR plugin tests: anyio on asyncio, a real sink, the simulated TWS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub_core import BookClear, BookSnapshot, BookUpdate, Gap, Quote, Trade, TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor
from hub_plugin_ibkr.simulator import TwsSimulator

SYMBOLS = ["AAPL", "MSFT"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Collected:
    """A real bus and sink, with every published tick and gap kept in order."""

    def __init__(self, exchange: str = "ib") -> None:
        self.bus = TypedEventBus()
        self.processor = EventProcessor(self.bus)
        self.sink: ConnectionSink = self.processor.sink_for(exchange)
        self.events: list[Any] = []
        for kind in (Trade, Quote, BookUpdate, BookClear, BookSnapshot, Gap):
            self.bus.subscribe(kind, self.events.append)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    async with TwsSimulator(SYMBOLS, rate=200, seed=5) as s:
        yield s
