"""The core's plugin conformance suite (``hub_core.testing``) against the NinjaTrader plugin
and its simulator, through a real ``ExchangeHub``: connect, exact values, unsubscribe,
drop and reconnect with ``Gap``, malformed input, sequence gap, stall probed and recycled,
close."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import hub_plugin_ninjatrader
from hub_core import ExchangeConfig
from hub_core.testing import ConformanceSuite
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator


class TestNinjaTraderConformance(ConformanceSuite):
    name = "es_feed"
    symbols = ["ES 03-26", "NQ 03-26"]  # noqa: RUF012 - the suite declares it a ClassVar

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[NinjaTraderSimulator]:
        async with NinjaTraderSimulator(self.symbols, rate=300, seed=11, heartbeat_s=1) as sim:
            yield sim  # the simulator is the SimulatorHandle

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_ninjatrader

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig.ninjatrader(
            endpoint, symbols=symbols, options={"heartbeat_interval_s": 1}, **overrides
        )
