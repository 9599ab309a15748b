"""Fault (b): the venue process is killed (SIGKILL), stays down DOWN_S, and a new
``hub sim`` starts on the same port. Every blind window must be inside a Gap, data must
flow again, and no planted secret may appear in any output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.faults import restart_scenario

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
def test_killed_and_restarted_venue_is_covered_by_gaps(plugin: str, tmp_path: Path) -> None:
    out = restart_scenario(plugin, tmp_path)
    out.check()
