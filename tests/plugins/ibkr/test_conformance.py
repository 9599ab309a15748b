"""The core's plugin conformance suite (``hub_core.testing``) against the IBKR plugin and
the simulated TWS, through a real ``ExchangeHub``, in two data modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import hub_plugin_ibkr
from hub_core import ConnectionStateChanged, ExchangeConfig, ExchangeHub, Gap
from hub_core.testing import ConformanceSuite, EventRecorder
from hub_plugin_ibkr.simulator import TwsSimulator


class TestIbkrConformance(ConformanceSuite):
    name = "ib"
    symbols = ["AAPL", "MSFT"]  # noqa: RUF012 - the suite declares it a ClassVar
    has_sequence = False  # the TWS API numbers no message
    market_data = "top"

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[TwsSimulator]:
        async with TwsSimulator(self.symbols, rate=300, seed=11) as sim:
            yield sim

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_ibkr

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        options = {"market_data": self.market_data, "subscribe_settle_s": 0.2,
                   "tick_by_tick_interval_s": 0}  # fmt: skip
        return ExchangeConfig.interactive_brokers(
            endpoint, 5, symbols=symbols, options=options, **overrides
        )

    async def test_refused_credentials_stop_without_retrying(
        self, running: tuple[ExchangeHub, EventRecorder, TwsSimulator]
    ) -> None:
        """The TWS API has no credentials: what TWS refuses a session for is its client
        id (326, which the simulator's ``refuse_credentials`` sends). That is a
        configuration error: ``dead`` after one attempt, no retry for 0.5 s, and the
        blind window closed by a Gap (the suite's case with ``dead`` for
        ``auth_failed``)."""
        hub, rec, sim = running
        await rec.wait_for(lambda: len(rec.events) > 10, self.timeout, "data")
        mark = len(rec.events)
        await sim.refuse_credentials(True)
        try:
            await sim.drop_connections()
            await rec.wait_for(
                lambda: any(
                    isinstance(e, ConnectionStateChanged) and e.state == "dead"
                    for e in rec.events[mark:]
                ),
                self.timeout,
                "dead after 326",
            )
            await anyio.sleep(0.5)
        finally:
            await sim.refuse_credentials(False)
        states = [e for e in rec.events[mark:] if isinstance(e, ConnectionStateChanged)]
        assert [e.state for e in states].count("connecting") == 1, "a 326 was retried"
        assert states[-1].state == "dead" and "client id 5" in states[-1].reason
        assert hub.connection_status() == {self.name: False}
        assert [e for e in rec.events[mark:] if isinstance(e, Gap) and not e.symbol]


class TestIbkrTickByTickConformance(TestIbkrConformance):
    market_data = "tick_by_tick"
