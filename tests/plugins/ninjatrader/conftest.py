"""Fixtures of the NinjaTrader plugin tests: anyio on asyncio, a real sink, the simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub_core import BookClear, BookUpdate, Gap, Quote, Trade, TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator

VECTORS_PATH = (
    Path(__file__).resolve().parents[3] / "sdk-docs" / "protocols" / "ninjatrader-vectors.json"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return data


class Collected:
    """A real bus and sink, with every published tick and gap kept in order."""

    def __init__(self, exchange: str = "nt") -> None:
        self.bus = TypedEventBus()
        self.processor = EventProcessor(self.bus)
        self.sink: ConnectionSink = self.processor.sink_for(exchange)
        self.events: list[Any] = []
        for kind in (Trade, Quote, BookUpdate, BookClear, Gap):
            self.bus.subscribe(kind, self.events.append)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
async def sim() -> AsyncIterator[NinjaTraderSimulator]:
    async with NinjaTraderSimulator(["ES 03-26", "NQ 03-26"], rate=400, seed=7) as s:
        yield s
