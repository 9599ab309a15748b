"""Fault (d): the endpoint is a closed port and ``reconnect_attempts = 2``: the connection
gives up, ``hub run`` exits non-zero with a one-line reason, no traceback, no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.faults import dead_endpoint_scenario

PLUGINS = ["ninjatrader", "websocket-binance", "fix", "databento", "ibkr"]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_dead_endpoint_gives_up_with_one_line(plugin: str, tmp_path: Path) -> None:
    out = dead_endpoint_scenario(plugin, tmp_path)
    out.check()
