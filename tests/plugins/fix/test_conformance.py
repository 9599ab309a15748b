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


class TestFixConformance(ConformanceSuite):
    name = "cme"
    symbols = ["ES", "NQ"]  # noqa: RUF012 - the suite declares it a ClassVar

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[FixSimulator]:
        async with FixSimulator(self.symbols, rate=300, seed=11) as sim:
            yield sim  # the simulator is the SimulatorHandle (send_malformed: a bad CheckSum)

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
