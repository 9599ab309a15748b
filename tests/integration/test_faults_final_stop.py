"""Fault (b'): the venue is killed after data flowed and never comes back
(``reconnect_attempts = 2``). The connection ends ``dead``, ``hub run`` exits non-zero
with a one-line reason, and a Gap covers the time from the last data to the death."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.faults import final_stop_scenario

PLUGINS = ["ninjatrader", "websocket-binance", "fix", "databento", "ibkr"]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_venue_gone_for_good_ends_in_a_gap(plugin: str, tmp_path: Path) -> None:
    out = final_stop_scenario(plugin, tmp_path)
    out.check()
