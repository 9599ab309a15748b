"""``hub`` end to end with the installed NinjaTrader plugin and its simulator.

Everything listens and connects on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

from hub_core import BookClear, ExchangeRegistry, Side, Trade

EXCHANGE = "es_feed"
UNDEF_PRICE = 2**63 - 1  # DBN's "no price": never on a BookUpdate


def hub_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub_core.cli", *args]


def run_hub(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hub_cmd(*args),
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def jsonl_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def read_until(stream: TextIO, needle: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not seen in {seen[-5:]!r}")


@pytest.fixture(scope="module")
def symbols() -> list[str]:
    """The simulator's own default symbols (it only knows some roots)."""
    registry = ExchangeRegistry()
    registry.discover()
    spec = registry.factory("ninjatrader").simulator()
    assert spec is not None, "the ninjatrader plugin ships a simulator"
    assert spec.default_symbols
    return list(spec.default_symbols)


class Sim:
    def __init__(self, proc: subprocess.Popen[str], first_line: str, port: int) -> None:
        self.proc = proc
        self.first_line = first_line
        self.port = port


@pytest.fixture
def nt_sim(symbols: list[str], tmp_path: Path) -> Iterator[Sim]:
    with subprocess.Popen(
        hub_cmd("sim", "ninjatrader", "--port", "0", "--symbols", ",".join(symbols)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline().rstrip("\n")
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", first)
        if not m:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"hub sim printed {first!r} first; stderr: {err}")
        try:
            yield Sim(proc, first, int(m.group(1)))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
            assert proc.returncode == 0


def nt_config(tmp_path: Path, port: int, symbols: list[str], options: str = "") -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [exchanges.{EXCHANGE}]
            protocol = "ninjatrader"
            endpoint = "127.0.0.1:{port}"
            symbols = {json.dumps(symbols)}
            reconnect_attempts = 3
            {options}
            """
        ),
        encoding="utf-8",
    )
    return path


def test_plugins_lists_ninjatrader_with_its_simulator(tmp_path: Path) -> None:
    res = run_hub("plugins", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    nt = {p["name"]: p for p in json.loads(res.stdout)}["ninjatrader"]
    assert nt["distribution"] == "hub-plugin-ninjatrader"
    assert nt["protocols"] == ["ninjatrader"]
    assert nt["simulators"] == ["ninjatrader"]
    assert nt["enabled"] is True and nt["error"] == ""


def test_sim_prints_listening_first(nt_sim: Sim) -> None:
    assert nt_sim.first_line == f"listening on 127.0.0.1:{nt_sim.port}"
    assert nt_sim.port > 0


def test_check_validates_ninjatrader_options(symbols: list[str], tmp_path: Path) -> None:
    good = nt_config(tmp_path, 7496, symbols, "options = { heartbeat_interval_s = 5 }")
    res = run_hub("check", str(good), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK") and "ninjatrader" in res.stdout

    bad = nt_config(tmp_path, 7496, symbols, "options = { heartbeat_interval_s = 0 }")
    res = run_hub("check", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("hub: error:")]
    assert len(errors) == 1, res.stderr
    assert f"exchanges.{EXCHANGE}.options.heartbeat_interval_s" in errors[0]


def test_check_refuses_an_endpoint_the_plugin_cannot_dial(
    symbols: list[str], tmp_path: Path
) -> None:
    cfg = nt_config(tmp_path, 7496, symbols)
    cfg.write_text(cfg.read_text().replace('"127.0.0.1:7496"', '"nonsense"'), encoding="utf-8")
    for command in ("check", "run"):
        res = (
            run_hub(command, str(cfg), "--jsonl", cwd=tmp_path)
            if command == "run"
            else (run_hub(command, str(cfg), cwd=tmp_path))
        )
        assert res.returncode == 2, (command, res.stderr)
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("hub: error:")]
        assert len(errors) == 1, res.stderr
        assert f"exchanges.{EXCHANGE}.endpoint: 'nonsense' is not host:port" in errors[0]
        assert "Traceback" not in res.stderr


def test_run_jsonl_against_the_simulator(nt_sim: Sim, symbols: list[str], tmp_path: Path) -> None:
    cfg = nt_config(tmp_path, nt_sim.port, symbols)
    res = run_hub("run", str(cfg), "--jsonl", "--duration", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    events = jsonl_events(res.stdout)
    trades = [e for e in events if e["type"] == "Trade"]
    assert trades, res.stdout[:2000]
    keys = {"type", *Trade("x", "s", 0, 0, Side.NONE, 0, 0).as_dict()}
    for t in trades:
        assert set(t) == keys
        assert t["exchange"] == EXCHANGE
        assert t["symbol"] in symbols
        assert isinstance(t["price"], int) and t["price"] > 0
        assert isinstance(t["size"], int) and t["size"] > 0
    assert any(e["type"] == "Quote" for e in events)
    states = [e["state"] for e in events if e["type"] == "ConnectionStateChanged"]
    assert "connected" in states and states[-1] == "closed"
    assert all(e["exchange"] == EXCHANGE for e in events)
    # each symbol's book starts with a clear (the simulator's DBN mbo record with action R):
    # a "BookClear" line with its own fields, before any "BookUpdate" of the symbol
    clears = [e for e in events if e["type"] == "BookClear"]
    assert {c["symbol"] for c in clears} == set(symbols), clears
    clear_keys = {"type", *BookClear("x", "s", 0, 0).as_dict()}
    books = [e for e in events if e["type"] in ("BookClear", "BookUpdate")]
    for c in clears:
        assert set(c) == clear_keys and c["reason"] == ""
        assert c["ts_event"] > 0 and c["ts_recv"] > 0 and c["sequence"] > 0
    for symbol in symbols:
        assert next(e for e in books if e["symbol"] == symbol)["type"] == "BookClear"
    updates = [e for e in events if e["type"] == "BookUpdate"]
    assert updates, res.stdout[:2000]
    assert all(u["action"] != "R" and u["price"] != UNDEF_PRICE for u in updates)


def test_demo_streams_ninjatrader_trades(tmp_path: Path) -> None:
    res = run_hub("demo", "--duration", "3", "--jsonl", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    events = jsonl_events(res.stdout)
    trades = [e for e in events if e["type"] == "Trade" and e["exchange"] == "ninjatrader"]
    assert trades
    assert all(isinstance(t["price"], int) for t in trades)
    endpoints = {
        e["endpoint"]
        for e in events
        if e["type"] == "ConnectionStateChanged" and e["exchange"] == "ninjatrader"
    }
    assert endpoints and all(ep.startswith("127.0.0.1:") for ep in endpoints)


def test_run_serves_metrics(nt_sim: Sim, symbols: list[str], tmp_path: Path) -> None:
    cfg = nt_config(tmp_path, nt_sim.port, symbols)
    with subprocess.Popen(
        hub_cmd("run", str(cfg), "--jsonl", "--duration", "30", "--metrics-port", "0"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        line = read_until(proc.stderr, "metrics on ")
        m = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert m, line
        url = f"http://127.0.0.1:{m.group(1)}/metrics"
        pattern = rf'hub_trades_total\{{exchange="{EXCHANGE}"\}} [1-9]'
        text = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            if re.search(pattern, text):
                break
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert re.search(pattern, text), text
    assert f'hub_connection_up{{exchange="{EXCHANGE}",protocol="ninjatrader"}} 1.0' in text
    assert "hub_book_updates_total" in text and "hub_latency_seconds" in text
    got = re.search(rf'hub_bytes_received_total{{exchange="{EXCHANGE}"}} (\S+)', text)
    assert got is not None and float(got.group(1)) > 0, text
    assert re.search(rf'hub_latency_seconds_bucket{{exchange="{EXCHANGE}",le="\+Inf"}}', text)
