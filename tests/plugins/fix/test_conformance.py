"""The core's plugin conformance suite (``hub_core.testing``) against the FIX plugin and
its simulator, through a real ``ExchangeHub``: connect, exact values, unsubscribe, drop
and reconnect with ``Gap``, malformed input (a wrong CheckSum), sequence gap (a skipped
MsgSeqNum), stall probed (TestRequest) and recycled, close (Logout)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import hub_plugin_fix
from hub_core import ExchangeConfig
from hub_core.testing import ConformanceSuite
from hub_plugin_fix.simulator import FixSimulator


class SimulatorAdapter:
    """The suite's ``SimulatorHandle`` over the real simulator (its faults are sync)."""

    def __init__(self, sim: FixSimulator) -> None:
        self.sim = sim
        self.endpoint = sim.endpoint

    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        return self.sim.sent_trades(symbol)

    async def drop_connections(self) -> None:
        self.sim.drop_connections()

    async def stall(self) -> None:
        self.sim.stall()

    async def resume(self) -> None:
        self.sim.resume()

    async def send_malformed(self) -> None:
        self.sim.send_malformed("checksum")

    async def skip_sequence(self) -> None:
        self.sim.skip_sequence()


class TestFixConformance(ConformanceSuite):
    name = "cme"
    symbols = ["ES", "NQ"]  # noqa: RUF012 - the suite declares it a ClassVar

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[SimulatorAdapter]:
        async with FixSimulator(self.symbols, rate=300, seed=11) as sim:
            yield SimulatorAdapter(sim)

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_fix

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig.fix(
            self.name,
            endpoint,
            symbols=symbols,
            options={"heartbeat_interval_s": 1, "logon_timeout_s": 2},
            **overrides,
        )
