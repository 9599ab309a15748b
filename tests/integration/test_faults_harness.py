"""The fault suite's own checks, on recorded-looking events and a real loopback socket:
the harness must find a blind window, accept a Gap that covers it, and refuse one that
does not, or the fault tests prove nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.faults import (
    BLIND_THRESHOLD_NS,
    GAP_TOLERANCE_NS,
    HubRun,
    RefusingHttpServer,
    Secrets,
    _LineReader,
    coverage_problems,
    resumed_problems,
    secret_problems,
)

MS = 1_000_000
T0 = 1_800_000_000_000_000_000


def tick(ms: int, exchange: str = "nt") -> dict[str, Any]:
    return {"type": "Trade", "exchange": exchange, "symbol": "ES", "ts_recv": T0 + ms * MS}


def gap(start_ms: int, end_ms: int, symbol: str = "", exchange: str = "nt") -> dict[str, Any]:
    return {
        "type": "Gap",
        "exchange": exchange,
        "symbol": symbol,
        "start_ts": T0 + start_ms * MS,
        "end_ts": T0 + end_ms * MS,
        "reason": "test",
    }


def frozen_feed(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Ticks every 20 ms for 1 s, nothing for 3.5 s (the freeze), then 1 s more."""
    before = [tick(ms) for ms in range(0, 1000, 20)]
    after = [tick(ms) for ms in range(4480, 5500, 20)]
    return [*before, *extra, *after]


FAULT = (T0 + 990 * MS, T0 + 4490 * MS)


def test_threshold_is_under_stale_after_and_far_above_the_feed_spacing() -> None:
    assert BLIND_THRESHOLD_NS == 800 * MS
    assert GAP_TOLERANCE_NS == 50 * MS


def test_freeze_window_without_a_gap_is_reported() -> None:
    problems = coverage_problems(frozen_feed(), "nt", FAULT)
    assert len(problems) == 1
    assert problems[0].startswith("blind window with no Gap: nt: 3.500 s")


def test_gap_from_the_last_tick_to_the_next_covers_it() -> None:
    assert coverage_problems(frozen_feed(gap(980, 4480)), "nt", FAULT) == []
    # two Gaps that touch within the tolerance cover it too
    assert coverage_problems(frozen_feed(gap(1000, 2500), gap(2540, 4460)), "nt", FAULT) == []


def test_gap_from_when_the_hub_noticed_is_not_enough() -> None:
    problems = coverage_problems(frozen_feed(gap(2680, 4480)), "nt", FAULT)
    assert len(problems) == 1 and "+1.700 s" in problems[0]


def test_another_connections_or_a_symbols_gap_does_not_count() -> None:
    feed = frozen_feed(gap(980, 4480, exchange="other"), gap(980, 4480, symbol="ES"))
    assert len(coverage_problems(feed, "nt", FAULT)) == 1


def test_a_fault_that_made_no_window_is_a_harness_problem() -> None:
    steady = [tick(ms) for ms in range(0, 5500, 20)]
    problems = coverage_problems(steady, "nt", FAULT)
    assert len(problems) == 1 and problems[0].startswith("harness: no blind window")


def test_resumed_counts_only_ticks_after_the_fault() -> None:
    assert resumed_problems(frozen_feed(), "nt", FAULT[1]) == []
    assert resumed_problems(frozen_feed()[:50], "nt", FAULT[1]) != []


def test_refusing_server_answers_the_upgrade_and_counts_it() -> None:
    with RefusingHttpServer(429, "Too Many Requests", {"Retry-After": "2"}) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        assert b"\r\nRetry-After: 2\r\n" in answer
        assert len(srv.accepts) == 1


def test_secret_scan_finds_each_secret_where_it_leaked(tmp_path: Path) -> None:
    planted = Secrets()
    log = tmp_path / "hub-run.log"
    log.write_text(f"connecting ws://alice:{planted.url_password}@127.0.0.1:1/ws\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", f"print({planted.env_password!r})"], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    run = HubRun(proc, log, _LineReader(proc.stdout))
    run.wait(timeout=30)
    run.metrics.append(f'hub_info{{token="{planted.url_token}"}} 1'.encode())
    assert sorted(secret_problems(run, planted)) == [
        "secret leaked: the credentials.password_env appears 1 times in stdout",
        "secret leaked: the endpoint URL password appears 1 times in stderr/log file",
        "secret leaked: the endpoint URL token appears 1 times in metrics page 1",
    ]
    clean = Secrets()
    assert secret_problems(run, clean) == []
