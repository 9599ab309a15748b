"""``hub run --record`` against real simulators, then ``hub replay``: the same ticks.

Both simulators (NinjaTrader: DBN on the wire; Binance: JSON over WebSocket)
run as ``hub sim`` processes on 127.0.0.1; the hub runs as ``hub run``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import databento_dbn
import pytest
import zstandard

from tests.integration.test_cli_ninjatrader import hub_cmd, run_hub

MARKET = {"Trade", "Quote", "BookUpdate", "BookSnapshot", "BookClear", "Gap"}
# DBN has no field for these: a recorded file cannot give them back (sdk-docs/dbn.md)
NOT_IN_DBN = {"Trade": ("trade_id",), "BookClear": ("reason",)}


def start_sim(name: str, venue: str) -> tuple[subprocess.Popen[str], str]:
    """A simulator process and the hub.toml table that connects to it (from its stderr)."""
    proc = subprocess.Popen(
        hub_cmd("sim", venue, "--duration", "90"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert first.startswith("listening on "), first
    lines: list[str] = []
    while True:
        line = proc.stderr.readline()
        if not line or (not line.strip() and lines):
            break
        if line.startswith("[exchanges.") or lines:
            lines.append(line)
    assert lines, f"no config block from `hub sim {venue}`"
    return proc, "".join(lines).replace("[exchanges.sim]", f"[exchanges.{name}]")


@pytest.fixture
def hub_toml(tmp_path: Path) -> Iterator[Path]:
    procs = []
    tables = []
    try:
        for name, venue in (("nt", "ninjatrader"), ("bin", "binance")):
            proc, table = start_sim(name, venue)
            procs.append(proc)
            tables.append(table)
        path = tmp_path / "hub.toml"
        path.write_text("\n".join(tables))
        yield path
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def events(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        event = json.loads(line)
        if event["type"] in MARKET:
            for key in NOT_IN_DBN.get(event["type"], ()):
                event.pop(key)
            if event["type"] == "BookSnapshot":  # mbp-10: ten levels a side
                event["bids"], event["asks"] = event["bids"][:10], event["asks"][:10]
            out.append(event)
    return out


def by_exchange(evs: list[dict[str, Any]], exchange: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["exchange"] == exchange]


def test_a_recorded_simulator_session_replays_tick_for_tick(hub_toml: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    live = run_hub(
        "run", str(hub_toml), "--record", str(rec), "--jsonl", "--duration", "4", cwd=tmp_path
    )
    assert live.returncode == 0, live.stderr
    live_events = events(live.stdout)
    for exchange in ("nt", "bin"):
        assert len(by_exchange(live_events, exchange)) > 10, f"{exchange}: too few live ticks"
    assert sorted(p.name for p in rec.iterdir()) == ["bin", "nt"]

    replayed = run_hub("replay", str(rec), "--jsonl", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    replay_events = events(replayed.stdout)
    # tick for tick per connection, every field (ts_recv too: the recorded one)
    for exchange in ("nt", "bin"):
        assert by_exchange(replay_events, exchange) == by_exchange(live_events, exchange)
    # across connections, merged by ts_recv
    stamps = [e["ts_recv"] for e in replay_events]
    assert stamps == sorted(stamps)

    # Databento's own decoder reads the same values from the NinjaTrader file
    trades = [e for e in by_exchange(live_events, "nt") if e["type"] == "Trade"]
    assert trades
    records: list[Any] = []
    for path in sorted((rec / "nt").iterdir()):
        with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
            dec = databento_dbn.DBNDecoder()
            dec.write(reader.read())
            records.extend(dec.decode())
    symbols = {r.instrument_id: r.stype_in_symbol for r in records if hasattr(r, "stype_in_symbol")}
    dbn_trades = [r for r in records if isinstance(r, databento_dbn.TradeMsg)]
    assert [
        (symbols[r.instrument_id], r.price, r.size * 10**9, r.side, r.ts_event, r.ts_recv)
        for r in dbn_trades
    ] == [
        (t["symbol"], t["price"], t["size"], t["side"], t["ts_event"], t["ts_recv"]) for t in trades
    ]


def test_replay_errors_are_one_line_with_the_cli_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "bad.dbn").write_text("not dbn")
    (tmp_path / "empty").mkdir()
    for args in (["missing.dbn"], ["bad.dbn"], ["empty"]):
        proc = run_hub("replay", *args, cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.startswith("hub: error: ") and proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr


def test_record_into_a_path_that_cannot_be_a_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(
        '[exchanges.x]\nprotocol = "ninjatrader"\nendpoint = "127.0.0.1:9"\nsymbols = ["ES"]\n'
    )
    (tmp_path / "afile").write_text("x")
    proc = run_hub("run", "hub.toml", "--record", "afile/rec", "--duration", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("hub: error: --record afile/rec: cannot write there")
    assert proc.stderr.count("\n") == 1
