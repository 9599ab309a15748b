"""The fault of issue 9 as a user meets it: ``hub sim fix`` frozen (SIGSTOP: the socket
stays open, nothing arrives) and thawed (SIGCONT) under a running hub: the simulator
survives and serves again, the hub recycles the stale link and comes back, and every
blind window is inside a ``Gap``. (The writer race that killed the simulator on a thaw
needs a blocked socket to show; ``test_blocked_writes`` makes one on purpose.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import anyio
import pytest

from hub_core import ConnectionState, ConnectionStateChanged, ExchangeConfig, Trade
from hub_core.testing.coverage import assert_blind_windows_covered

from .test_end_to_end import NAME, TIMEOUT, start

pytestmark = pytest.mark.anyio


@pytest.fixture
def sim_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    with subprocess.Popen(
        [sys.executable, "-m", "hub_core.cli", "sim", "fix", "--port", "0", "--rate", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("listening on 127.0.0.1:"), first
            yield proc, int(first.strip().rsplit(":", 1)[1])
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            proc.wait(timeout=10)


async def test_a_frozen_then_thawed_simulator_survives_and_the_blindness_is_in_a_gap(
    sim_process: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = sim_process
    cfg = ExchangeConfig.fix(
        NAME,
        f"fix://127.0.0.1:{port}",
        symbols=["ES", "NQ"],
        stale_after_ms=1000,
        reconnect_delay_ms=100,
        reconnect_max_delay_ms=500,
        options={"heartbeat_interval_s": 1, "logon_timeout_s": 3},
    )
    async with start(cfg) as run:
        await run.trades_for(["ES", "NQ"])
        os.kill(proc.pid, signal.SIGSTOP)
        await anyio.sleep(3.5)  # the hub sees silence, probes, recycles
        os.kill(proc.pid, signal.SIGCONT)
        # the hub comes back: connected again after its stale recycle

        def back() -> bool:
            states = [e.state for e in run.rec.events if isinstance(e, ConnectionStateChanged)]
            return ConnectionState.RECONNECTING in states and states[-1] == "connected"

        await run.rec.wait_for(back, TIMEOUT * 3, "connected again after the recycle")
        mark = len(run.rec.events)
        await run.rec.wait_for(
            lambda: len([e for e in run.rec.events[mark:] if isinstance(e, Trade)]) >= 50,
            TIMEOUT * 3,
            "50 trades after the thaw",
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert run.hub.connection_status() == {NAME: True}
        # every silence of more than 1 s in the feed is covered by a Gap
        windows = assert_blind_windows_covered(run.rec.events, 1_000_000_000, exchange=NAME)
        assert windows, "the freeze made no blind window: the fault did not happen"
