"""The core's plugin conformance suite (``hub_core.testing``) against the websocket plugin
with the Binance dialect and its simulator, through a real ``ExchangeHub``, once per
transport: connect, exact values, unsubscribe, drop and reconnect with ``Gap``, malformed
input, sequence gap, stall probed and recycled, close.

Binance's trade streams carry no connection sequence, but its diff-depth stream does
(``U``/``u``): the simulator's ``skip_sequence`` loses one depth update of every symbol,
and the dialect must publish a ``Gap`` whose reason says "sequence" and resync the book.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

import hub_plugin_websocket
from hub_core import ExchangeConfig
from hub_core.testing import ConformanceSuite, SyncFaultsAdapter
from hub_plugin_websocket.simulator import BinanceSimulator


class _BinanceConformance(ConformanceSuite):
    name = "binance"
    symbols: ClassVar[list[str]] = ["BTCUSDT", "ETHUSDT"]
    has_sequence = True
    transport: ClassVar[str] = "websockets"

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[SyncFaultsAdapter]:
        async with BinanceSimulator(self.symbols, rate=150, seed=7) as sim:
            yield SyncFaultsAdapter(sim)

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_websocket

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig.websocket(
            "binance",
            endpoint,
            symbols=symbols,
            options={
                "channels": ["trade", "bookTicker", "depth@100ms"],
                "transport": self.transport,
                "subscribe_timeout_s": 2.0,
            },
            **overrides,
        )


class TestConformanceWebsockets(_BinanceConformance):
    transport = "websockets"


class TestConformancePicows(_BinanceConformance):
    transport = "picows"
