"""Fault (a): the venue process is frozen (SIGSTOP) for FREEZE_S with its sockets open,
then thawed (SIGCONT). Every blind window must be inside a Gap, data must flow again,
and no planted secret may appear in any output. See sdk-docs/fault-suite.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.faults import freeze_scenario

PLUGINS = [
    "ninjatrader",
    "websocket-binance",
    "websocket-coinbase",
    "websocket-kraken",
    "fix",
    "databento",
    "ibkr",
]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_frozen_venue_is_covered_by_gaps(plugin: str, tmp_path: Path) -> None:
    out = freeze_scenario(plugin, tmp_path)
    out.check()
