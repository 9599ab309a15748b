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
from typing import ClassVar

import pytest

from hub_plugin_websocket.simulators import BinanceSimulator
from tests.plugins.websocket.conftest import WebSocketConformance


class _BinanceConformance(WebSocketConformance):
    name = "binance"
    symbols: ClassVar[list[str]] = ["BTCUSDT", "ETHUSDT"]
    has_sequence = True
    channels: ClassVar[list[str]] = ["trade", "bookTicker", "depth@100ms"]

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[BinanceSimulator]:
        async with BinanceSimulator(self.symbols, rate=150, seed=7) as sim:
            yield sim  # the simulator is the SimulatorHandle


class TestConformanceWebsockets(_BinanceConformance):
    transport = "websockets"


class TestConformancePicows(_BinanceConformance):
    transport = "picows"
