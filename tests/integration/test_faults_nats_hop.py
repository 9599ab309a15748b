"""Fault (a) through a NATS hop: a venue frozen behind a hub's NATS sink still yields a
Gap on the far side, where a second hub receives through ``protocol = "nats"``. See
sdk-docs/fault-suite.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.faults import nats_hop_freeze_scenario

PLUGINS = ["ninjatrader", "websocket-binance"]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_frozen_venue_behind_a_nats_hop_is_covered_by_gaps(plugin: str, tmp_path: Path) -> None:
    out = nats_hop_freeze_scenario(plugin, tmp_path)
    out.check()
