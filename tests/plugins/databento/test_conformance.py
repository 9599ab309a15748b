"""The core's plugin conformance suite (``hub_core.testing``) against the Databento plugin
and its gateway simulator, through a real ``ExchangeHub``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import hub_plugin_databento
from hub_core import ExchangeConfig
from hub_core.testing import ConformanceSuite
from hub_plugin_databento.simulator import GatewaySimulator

from .conftest import KEY


class TestDatabentoConformance(ConformanceSuite):
    name = "glbx"
    symbols = ["ESZ6", "NQZ6"]  # noqa: RUF012 - the suite declares it a ClassVar
    # the gateway numbers records with the venue's sequence, shared by every schema and
    # instrument: one subscription sees a subset, so contiguity cannot be checked
    has_sequence = False
    recovers_on_reconnect = True  # resubscribes with an intraday replay from the seam

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[GatewaySimulator]:
        async with GatewaySimulator(self.symbols, rate=300, seed=11) as sim:
            yield sim

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_databento

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig.databento(
            "GLBX.MDP3", api_key=KEY, endpoint=endpoint, symbols=symbols, **overrides
        )
