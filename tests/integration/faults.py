"""The fault suite's harness: real ``hub sim`` and ``hub run`` processes, faults from outside.

Everything a user would do, and nothing more: a venue is ``hub sim PROTOCOL`` (the
installed console script next to ``sys.executable``), the hub is ``hub run hub.toml
--jsonl`` with its stderr in a log file, faults are signals to the venue process
(SIGSTOP/SIGCONT, SIGKILL and a restart on the same port), a refusing venue is a
real loopback socket server here, and a dead endpoint is a port nobody listens on.

Every process is killed in a ``finally`` (the context managers below) and every
wait has a bound. Nothing here measures speed: the checks are about order, counts
and coverage (see ``sdk-docs/fault-suite.md``). The Gap rule itself is the core's
(``hub_core.testing``): this module only records and feeds it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from hub_core.testing import DATA_TYPES, Window, blind_windows, trailing_windows, uncovered

HUB = str(Path(sys.executable).with_name("hub"))
"""The installed ``hub`` console script of the interpreter running the tests."""

LOOPBACK = "127.0.0.1"

STALE_AFTER_MS = 1000
"""``stale_after_ms`` of every connection the suite configures."""

BLIND_THRESHOLD_NS = int(0.8 * STALE_AFTER_MS * 1_000_000)
"""A silence between two data ticks of one connection longer than this is a blind
window: 0.8 * stale_after_ms, so any silence long enough for the hub to have to notice
it (stale detection starts at stale_after_ms) is checked, while the simulators' normal
spacing (tens of ms at the suite's rate) never comes near it."""

GAP_TOLERANCE_NS = 50_000_000
"""How far (50 ms) a Gap's edges may miss a blind window's and still cover it."""

RATE = 50
"""Events per second per symbol for every simulator (``hub sim --rate``)."""

FREEZE_S = 3.5
"""How long a frozen venue stays stopped (SIGSTOP ... SIGCONT)."""

DOWN_S = 1.5
"""How long a killed venue stays down before it is restarted on the same port."""

BOUND_S = 40.0
"""The generous bound of any single wait (start-up, data, exit) on a loaded 2-core box."""

METRICS_AND_LOGS = ("--metrics-port", "0", "--log-level", "info")

TRACEBACK = "Traceback (most recent call last)"


# -- processes -------------------------------------------------------------------------------
class _LineReader:
    """Reads a pipe on a thread, keeping every byte and every line with its arrival time.

    A thread (not non-blocking reads) so that a process writing fast never blocks on a
    full pipe while the test is sleeping through a fault.
    """

    def __init__(self, pipe: IO[bytes]) -> None:
        self.raw = bytearray()
        self.lines: list[bytes] = []
        self._lock = threading.Lock()
        self._pipe = pipe
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe: IO[bytes]) -> None:
        for line in iter(pipe.readline, b""):
            with self._lock:
                self.raw += line
                self.lines.append(line)

    def snapshot(self) -> list[bytes]:
        with self._lock:
            return list(self.lines)

    def close(self, timeout: float = 10) -> None:
        """After the process ended: wait for the last bytes (bounded), close the pipe."""
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._pipe.close()


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop ``proc`` (``sig``, then SIGKILL after a bound); never leaves it running."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        proc.send_signal(sig)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = BOUND_S) -> None:
    """Poll ``predicate`` every 50 ms; ``AssertionError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Venue:
    """A ``hub sim`` process; ``freeze``/``thaw``/``kill``/``restart`` are the faults."""

    protocol: str
    args: list[str]
    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _out: _LineReader | None = None

    def start(self) -> None:
        """Start ``hub sim`` on ``self.port`` (0 the first time) and wait for its
        ``listening on HOST:PORT`` line; a port still held after a kill is retried."""
        deadline = time.monotonic() + BOUND_S
        while True:
            err_path = self.workdir / f"sim-{self.protocol}-{self.starts}.log"
            self.starts += 1
            with err_path.open("wb") as err:
                proc = subprocess.Popen(
                    [HUB, "sim", self.protocol, "--port", str(self.port), *self.args],
                    stdout=subprocess.PIPE,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    cwd=self.workdir,
                )
            assert proc.stdout is not None
            self.proc = proc
            self._out = out = _LineReader(proc.stdout)

            def printed(out: _LineReader = out, proc: subprocess.Popen[bytes] = proc) -> bool:
                return bool(out.snapshot()) or proc.poll() is not None

            try:
                wait_until(f"hub sim {self.protocol} to print its first line", printed)
            except AssertionError:
                _stop(proc)
                out.close()
                raise
            lines = out.snapshot()
            first = lines[0].decode(errors="replace").strip() if lines else ""
            m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", first)
            if m:
                self.port = int(m.group(1))
                return
            _stop(proc)
            out.close()
            stderr = err_path.read_text(errors="replace").strip()
            if "in use" in stderr and time.monotonic() < deadline:
                time.sleep(0.2)  # the killed venue's port: the OS frees it shortly
                continue
            raise AssertionError(
                f"hub sim {self.protocol} {' '.join(self.args)} did not start: first line "
                f"{first!r}, exit {proc.returncode}, stderr: {stderr[-600:]}"
            )

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def freeze(self) -> None:
        """SIGSTOP: the venue's sockets stay open and nothing arrives (a stalled venue)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the venue dies at once; the kernel resets its connections."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=15)
        if self._out is not None:
            self._out.close()

    def restart(self) -> None:
        """A new ``hub sim`` on the same port (fresh state: sequence numbers, books)."""
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        if self._out is not None:
            self._out.close()


@contextmanager
def venue(protocol: str, workdir: Path, *args: str) -> Iterator[Venue]:
    """A running ``hub sim PROTOCOL --rate RATE ARGS...``, killed on exit."""
    v = Venue(protocol, ["--rate", str(RATE), *args], workdir)
    try:
        v.start()
        yield v
    finally:
        v.stop()


@dataclass
class HubRun:
    """A ``hub run hub.toml --jsonl --metrics-port 0`` process: stdout read live, stderr in
    ``log_path``, the metrics pages fetched during the run kept in ``metrics``."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    stdout: _LineReader
    metrics: list[bytes] = field(default_factory=list)
    returncode: int | None = None

    def events(self) -> list[dict[str, Any]]:
        """Every ``--jsonl`` line so far, parsed (a line that is not JSON fails the test)."""
        out = []
        for line in self.stdout.snapshot():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    raise AssertionError(
                        f"hub run wrote a non-JSON line on stdout: {line!r}"
                    ) from None
        return out

    def data(self, since_ns: int = 0) -> list[dict[str, Any]]:
        """The market-data ticks received (``ts_recv``) at or after ``since_ns``."""
        return [e for e in self.events() if e["type"] in DATA_TYPES and e["ts_recv"] >= since_ns]

    def wait_data(self, count: int, since_ns: int = 0, exchange: str = "") -> None:
        """Wait for ``count`` ticks (of ``exchange``, "" = any) received after ``since_ns``."""

        def enough() -> bool:
            got = [e for e in self.data(since_ns) if not exchange or e["exchange"] == exchange]
            return len(got) >= count or self.proc.poll() is not None

        wait_until(f"{count} data ticks after {since_ns}", enough)
        got = [e for e in self.data(since_ns) if not exchange or e["exchange"] == exchange]
        assert len(got) >= count, (
            f"hub run exited ({self.proc.returncode}) after {len(got)} of {count} data ticks "
            f"received after {since_ns}; stderr tail: {self.stderr_lines()[-3:]}"
        )

    def stderr_bytes(self) -> bytes:
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def stderr_lines(self) -> list[str]:
        return [ln for ln in self.stderr_bytes().decode(errors="replace").splitlines() if ln]

    def metrics_url(self) -> str | None:
        m = re.search(rb"metrics on (http://127\.0\.0\.1:\d+/metrics)", self.stderr_bytes())
        return m.group(1).decode() if m else None

    def fetch_metrics(self, timeout: float = BOUND_S) -> bytes:
        """Fetch the metrics page now (waiting for its address on stderr) and keep it."""
        wait_until("the metrics address on stderr", lambda: self.metrics_url() is not None, timeout)
        url = self.metrics_url()
        assert url is not None
        with urllib.request.urlopen(url, timeout=10) as resp:
            page = bytes(resp.read())
        self.metrics.append(page)
        return page

    def stop(self) -> int:
        """SIGTERM (a clean stop), bounded; the exit code."""
        _stop(self.proc)
        return self.wait(timeout=15)

    def wait(self, timeout: float = BOUND_S) -> int:
        """Wait (bounded) for the process to end on its own; the exit code."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(self.proc)
            raise AssertionError(f"hub run did not exit within {timeout:.0f} s") from None
        self.stdout.close()
        return self.returncode


@contextmanager
def hub_run(
    config: Path, env: Mapping[str, str] | None = None, duration: float = 60.0
) -> Iterator[HubRun]:
    """``hub run CONFIG --jsonl --duration DURATION --metrics-port 0 --log-level info``
    with ``env`` added to the environment; killed on exit.

    ``--log-level info`` so that the log file holds everything the hub logs about its
    connections (the secret scan reads it); ``duration`` is only a bound: tests stop
    the run with SIGTERM once they have seen what they wait for.
    """
    log_path = config.with_name("hub-run.log")
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [HUB, "run", str(config), "--jsonl", "--duration", str(duration), *METRICS_AND_LOGS],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=config.parent,
            env=full_env,
        )
    assert proc.stdout is not None
    run = HubRun(proc, log_path, _LineReader(proc.stdout))
    try:
        yield run
    finally:
        _stop(proc, signal.SIGKILL)
        run.stdout.close()
        # kept next to the log, so a failure can be read event by event afterwards
        config.with_name("hub-run.jsonl").write_bytes(bytes(run.stdout.raw))


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then closed again)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# -- secrets and configs ---------------------------------------------------------------------
@dataclass(frozen=True)
class Secrets:
    """Unique random values planted in a run; none may appear in any of its output."""

    url_password: str = field(default_factory=lambda: "urlpw" + secrets.token_hex(10))
    url_token: str = field(default_factory=lambda: "urltok" + secrets.token_hex(10))
    env_username: str = field(default_factory=lambda: "envuser" + secrets.token_hex(6))
    env_password: str = field(default_factory=lambda: "envpw" + secrets.token_hex(10))
    env_api_key: str = field(default_factory=lambda: "db-" + secrets.token_hex(14) + "k")
    """A Databento-shaped key (32 characters), which the gateway simulator accepts."""

    def env(self) -> dict[str, str]:
        """The environment the ``credentials`` tables name (``*_env``)."""
        return {
            "FAULTS_USER": self.env_username,
            "FAULTS_PASSWORD": self.env_password,
            "FAULTS_API_KEY": self.env_api_key,
        }

    def values(self) -> dict[str, str]:
        """What must never appear, by where it was planted. The env username is not
        listed: a user name is not a secret (the hub may show who it logs in as)."""
        return {
            "endpoint URL password": self.url_password,
            "endpoint URL token": self.url_token,
            "credentials.password_env": self.env_password,
            "credentials.api_key_env": self.env_api_key,
        }


CREDENTIALS = """
[exchanges.{name}.credentials]
username_env = "FAULTS_USER"
password_env = "FAULTS_PASSWORD"
"""

WS_VENUES: dict[str, tuple[str, list[str], list[str]]] = {
    # dialect: (URL path, symbols, channels)
    "binance": ("/ws", ["BTCUSDT", "ETHUSDT"], ["trade", "bookTicker"]),
    "coinbase": ("/", ["BTC-USD", "ETH-USD"], ["matches", "ticker"]),
    "kraken": ("/v2", ["BTC/USD", "ETH/USD"], ["trade", "ticker"]),
}


def ws_url(port: int, dialect: str, planted: Secrets) -> str:
    """``ws://alice:PASSWORD@127.0.0.1:PORT/PATH?token=TOKEN``: secrets in the URL."""
    path = WS_VENUES[dialect][0]
    return f"ws://alice:{planted.url_password}@{LOOPBACK}:{port}{path}?token={planted.url_token}"


def exchange_table(
    plugin: str,
    port: int,
    planted: Secrets,
    *,
    reconnect_attempts: int = 0,
    target_comp_id: str = "VENUE",
) -> tuple[str, str]:
    """``(name, TOML)`` of one ``[exchanges.NAME]`` connection to a venue on ``port``.

    ``plugin`` is ``ninjatrader``, ``fix``, ``databento``, ``ibkr`` or ``websocket-DIALECT``.
    Every connection has ``stale_after_ms = STALE_AFTER_MS``, a short reconnect delay (so a
    restarted venue is found again within the test's bounds), and the planted secrets wherever
    the protocol takes them: env credentials for NinjaTrader, FIX and Databento, user:password
    and a token in the URL for WebSocket.
    """
    common = textwrap.dedent(
        f"""
        reconnect_attempts = {reconnect_attempts}
        reconnect_delay_ms = 100
        reconnect_max_delay_ms = 500
        connect_timeout_ms = 3000
        stale_after_ms = {STALE_AFTER_MS}
        """
    )
    if plugin == "ninjatrader":
        name = "nt"
        body = f'protocol = "ninjatrader"\nendpoint = "{LOOPBACK}:{port}"\nsymbols = ["ES", "NQ"]\n'
        tail = CREDENTIALS.format(name=name)
    elif plugin == "fix":
        name = "fix"
        body = (
            f'protocol = "fix"\nendpoint = "fix://{LOOPBACK}:{port}"\nsymbols = ["ES", "NQ"]\n'
            f'options = {{ sender_comp_id = "HUB", target_comp_id = "{target_comp_id}", '
            "heartbeat_interval_s = 1, reset_on_logon = true }\n"
        )
        tail = CREDENTIALS.format(name=name)
    elif plugin == "databento":
        name = "glbx"
        body = (
            f'protocol = "databento"\nendpoint = "{LOOPBACK}:{port}"\n'
            'symbols = ["ESZ6", "NQZ6"]\noptions = { dataset = "GLBX.MDP3" }\n'
        )
        tail = f'\n[exchanges.{name}.credentials]\napi_key_env = "FAULTS_API_KEY"\n'
    elif plugin == "ibkr":
        name = "ib"  # the TWS API has no credentials: nothing secret to plant
        body = (
            f'protocol = "ibkr"\nendpoint = "{LOOPBACK}:{port}"\n'
            'symbols = ["AAPL", "MSFT"]\noptions = { client_id = 3 }\n'
        )
        tail = ""
    elif plugin.startswith("websocket-"):
        dialect = plugin.removeprefix("websocket-")
        name = dialect
        _, symbols, channels = WS_VENUES[dialect]
        body = (
            f'protocol = "websocket"\nendpoint = "{ws_url(port, dialect, planted)}"\n'
            f"symbols = {json.dumps(symbols)}\n"
            f'options = {{ dialect = "{dialect}", channels = {json.dumps(channels)} }}\n'
        )
        tail = ""
    else:
        raise ValueError(f"no such plugin in the fault suite: {plugin!r}")
    return name, f"[exchanges.{name}]\n{body}{common}{tail}"


def write_config(tmp_path: Path, *tables: str) -> Path:
    """``tmp_path/hub.toml`` made of the given ``[exchanges.*]`` tables."""
    path = tmp_path / "hub.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def venue_args(plugin: str) -> tuple[str, list[str]]:
    """``(protocol, hub sim arguments)`` of the simulator for ``plugin``."""
    if plugin.startswith("websocket-"):
        return "websocket", ["--dialect", plugin.removeprefix("websocket-")]
    return plugin, []


# -- checks: each returns the problems it found (a test asserts none) ------------------------
def coverage_problems(
    events: Sequence[Mapping[str, Any]], exchange: str, fault: tuple[int, int]
) -> list[str]:
    """The Gap rule for one connection, through the core's helpers.

    ``fault`` is the wall-clock (ns) interval the fault was applied. Problems: a blind
    window (silence > BLIND_THRESHOLD_NS between two ticks of ``exchange``) that the
    connection-wide Gaps do not cover within GAP_TOLERANCE_NS; and, as a check on the
    harness itself, a fault that made no blind window overlapping ``fault``.
    """
    problems = []
    windows = blind_windows(events, BLIND_THRESHOLD_NS, exchange)
    start, end = fault
    if not any(w.start_ns <= end and w.end_ns >= start for w in windows):
        problems.append(
            f"harness: no blind window of {exchange} overlaps the fault [{start}, {end}] "
            f"(windows: {[str(w) for w in windows]})"
        )
    for w in uncovered(windows, events, GAP_TOLERANCE_NS):
        if exchange in REPLAYING and not replay_problems(events, exchange, w):
            continue  # the venue replayed the window: nothing was missed
        problems.append(f"blind window with no Gap: {w} ({describe_gaps(events, exchange, w)})")
    if exchange in REPLAYING:
        problems += duplicate_problems(events, exchange)
    return problems


REPLAYING = frozenset({"glbx"})
"""Connections whose venue replays what a dropped session missed (Databento): a blind
window there needs no Gap when the sequence numbers show nothing was lost across it.
The gateway simulator numbers each schema on its own, across instruments, and the
connection takes every symbol, so its trades' sequence numbers are contiguous."""


def _trades(events: Sequence[Mapping[str, Any]], exchange: str) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("type") == "Trade" and e.get("exchange") == exchange]


def replay_problems(events: Sequence[Mapping[str, Any]], exchange: str, w: Window) -> list[str]:
    """Problems with a window a replay is to fill: the last trade before it and the first
    after it must have consecutive sequence numbers."""
    trades = _trades(events, exchange)
    before = [t for t in trades if int(t["ts_recv"]) <= w.start_ns]
    after = [t for t in trades if int(t["ts_recv"]) >= w.end_ns]
    if not before or not after:
        return [f"no trades on both sides of {w}"]
    last, first = int(before[-1]["sequence"]), int(after[0]["sequence"])
    if first != last + 1:
        return [f"trade sequence jumps from {last} to {first} across {w} with no Gap"]
    return []


def duplicate_problems(events: Sequence[Mapping[str, Any]], exchange: str) -> list[str]:
    """A replay must drop what was already delivered: no trade sequence number twice."""
    seen: set[int] = set()
    twice = []
    for t in _trades(events, exchange):
        seq = int(t["sequence"])
        if seq in seen:
            twice.append(seq)
        seen.add(seq)
    return [f"trades delivered twice (sequence {twice[:5]})"] if twice else []


def describe_gaps(events: Sequence[Mapping[str, Any]], exchange: str, w: Window) -> str:
    """The connection-wide Gaps of ``exchange``, relative to window ``w`` (for messages)."""
    gaps = [
        f"[{(e['start_ts'] - w.start_ns) / 1e9:+.3f} s, {(e['end_ts'] - w.start_ns) / 1e9:+.3f} s"
        f" {e['reason']!r}]"
        for e in events
        if e["type"] == "Gap" and e["exchange"] == exchange and not e["symbol"]
    ]
    return "Gaps relative to the window's start: " + (", ".join(gaps) if gaps else "none")


def resumed_problems(
    events: Sequence[Mapping[str, Any]], exchange: str, after_ns: int, at_least: int = 5
) -> list[str]:
    """Data must flow again after the fault: ``at_least`` ticks received after ``after_ns``."""
    n = sum(
        1
        for e in events
        if e["type"] in DATA_TYPES and e["exchange"] == exchange and e["ts_recv"] >= after_ns
    )
    if n < at_least:
        return [f"data did not resume on {exchange}: {n} ticks after the fault ended"]
    return []


def secret_problems(run: HubRun, planted: Secrets) -> list[str]:
    """Every planted secret, searched in every byte of stdout, the log file (stderr) and
    every metrics page fetched during the run."""
    sources = {"stdout": bytes(run.stdout.raw), "stderr/log file": run.stderr_bytes()}
    for i, page in enumerate(run.metrics):
        sources[f"metrics page {i + 1}"] = page
    problems = []
    for what, value in planted.values().items():
        for where, data in sources.items():
            n = data.count(value.encode())
            if n:
                problems.append(f"secret leaked: the {what} appears {n} times in {where}")
    return problems


def state_events(events: Sequence[Mapping[str, Any]], exchange: str) -> list[Mapping[str, Any]]:
    return [
        e for e in events if e["type"] == "ConnectionStateChanged" and e["exchange"] == exchange
    ]


def failed_exit_problems(run: HubRun, reason: re.Pattern[str]) -> list[str]:
    """A failed ``hub run``: non-zero exit, the last stderr line is one ``hub: error:`` line
    matching ``reason``, and no traceback anywhere on stderr."""
    problems = []
    if run.returncode in (None, 0):
        problems.append(f"hub run exited {run.returncode}, expected non-zero")
    lines = run.stderr_lines()
    last = lines[-1] if lines else ""
    if not last.startswith("hub: error:"):
        problems.append(f"the last stderr line is not a 'hub: error:' line: {last[:300]!r}")
    elif not reason.search(last):
        problems.append(
            f"the last stderr line does not name the reason /{reason.pattern}/: {last[:300]!r}"
        )
    if TRACEBACK.encode() in run.stderr_bytes():
        problems.append("stderr holds a traceback")
    return problems


def each_fact_once_problems(run: HubRun, name: str) -> list[str]:
    """The last line of a connection refused: says "connection refused" (not anyio's "All
    connection attempts failed"), names the exchange and the endpoint once, one hint."""
    lines = run.stderr_lines()
    last = lines[-1] if lines else ""
    problems = []
    if "connection refused" not in last or "All connection attempts failed" in last:
        problems.append(f"the reason is not 'connection refused': {last[:300]!r}")
    if last.count(f"{name} (") != 1 or last.count(f"[{name}]") != 0:
        problems.append(f"the exchange is not named exactly once: {last[:300]!r}")
    if last.count("127.0.0.1:") != 1:
        problems.append(f"the endpoint is not named exactly once: {last[:300]!r}")
    if last.count("check ") > 1:
        problems.append(f"more than one hint: {last[:400]!r}")
    return problems


# -- loopback servers the harness itself runs ------------------------------------------------
class _Server:
    """A thread-per-connection loopback TCP server recording every accept's time."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.accepts: list[float] = []
        """``time.monotonic()`` of every connection accepted, in order."""
        self._closing = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._thread.join(5)
        self._sock.close()
        with self._lock:
            for c in self._conns:
                c.close()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepts.append(time.monotonic())
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class RefusingHttpServer(_Server):
    """Answers every WebSocket upgrade with ``status`` (and ``headers``), then closes:
    a venue refusing the handshake (401, 403) or rate limiting it (429 + Retry-After)."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__()
        body = json.dumps({"code": status, "msg": reason}).encode()
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        self.response = "\r\n".join(head).encode() + body

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        request = b""
        try:
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            conn.sendall(self.response)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            conn.close()


class CountingRelay(_Server):
    """Forwards every connection to ``127.0.0.1:target`` and counts them: how many
    connection attempts the venue behind it saw, and when."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target

    def _serve(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection((LOOPBACK, self.target), timeout=10)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        conn.settimeout(None)
        with self._lock:
            self._conns.append(upstream)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()
        pump(conn, upstream)


# -- the scenarios, shared by the per-plugin tests -------------------------------------------
@dataclass
class Outcome:
    """What one scenario recorded, for the test's assertions and its failure message."""

    events: list[dict[str, Any]]
    run: HubRun
    exchange: str
    problems: list[str] = field(default_factory=list)

    def check(self, extra: str = "") -> None:
        """Fail the test with every problem found (not just the first), or pass."""
        if self.problems:
            pytest.fail(self.report() + extra, pytrace=False)

    def report(self) -> str:
        states = [
            f"{e['state']}({e['reason'][:80]})" for e in state_events(self.events, self.exchange)
        ]
        return (
            "\n".join(self.problems)
            + f"\n-- exit {self.run.returncode}; states: {states[:12]}"
            + f"\n-- stderr tail: {self.run.stderr_lines()[-3:]}"
            + f"\n-- recorded: {self.run.log_path} and hub-run.jsonl next to it"
        )


def freeze_scenario(plugin: str, tmp_path: Path) -> Outcome:
    """Data flows; the venue is frozen (SIGSTOP) for FREEZE_S, then thawed (SIGCONT);
    the run goes on until data flowed again. Problems: uncovered blind windows, no data
    after the thaw, a leaked secret, an unclean exit."""
    planted = Secrets()
    protocol, args = venue_args(plugin)
    with venue(protocol, tmp_path, *args) as v:
        name, table = exchange_table(plugin, v.port, planted)
        with hub_run(write_config(tmp_path, table), planted.env()) as run:
            run.wait_data(20, exchange=name)
            run.fetch_metrics()
            frozen = time.time_ns()
            v.freeze()
            time.sleep(FREEZE_S)
            thawed = time.time_ns()
            v.thaw()
            run.wait_data(20, since_ns=thawed, exchange=name)
            run.fetch_metrics()
            code = run.stop()
    return _judge(run, name, planted, (frozen, thawed), code)


def restart_scenario(plugin: str, tmp_path: Path) -> Outcome:
    """Data flows; the venue is killed (SIGKILL), stays down DOWN_S, and a new ``hub sim``
    starts on the same port; the run goes on until data flowed again."""
    planted = Secrets()
    protocol, args = venue_args(plugin)
    with venue(protocol, tmp_path, *args) as v:
        name, table = exchange_table(plugin, v.port, planted)
        with hub_run(write_config(tmp_path, table), planted.env()) as run:
            run.wait_data(20, exchange=name)
            run.fetch_metrics()
            killed = time.time_ns()
            v.kill()
            time.sleep(DOWN_S)
            v.restart()
            back = time.time_ns()
            run.wait_data(20, since_ns=back, exchange=name)
            run.fetch_metrics()
            code = run.stop()
    return _judge(run, name, planted, (killed, back), code)


@contextmanager
def nats_server(workdir: Path) -> Iterator[str]:
    """A nats-server of the test's own on a free loopback port (JetStream on, its store in
    ``workdir``); yields its URL. Missing binary: a failure under CI, a skip elsewhere."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        message = "nats-server is not installed (apt-get install nats-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "-a", LOOPBACK, "-p", str(port), "-js", "-sd", str(workdir / "nats-js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            with suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
                return True
            return False

        wait_until("nats-server listening", listening)
        yield f"nats://{LOOPBACK}:{port}"
    finally:
        _stop(proc, signal.SIGKILL)


def nats_hop_freeze_scenario(plugin: str, tmp_path: Path) -> Outcome:
    """Fault (a) behind a NATS hop: the venue feeds a near hub whose ``[sinks.hop]``
    publishes to a nats-server; a far hub's ``protocol = "nats"`` connection receives.
    The venue is frozen and thawed as in ``freeze_scenario``; the Gap rule is checked on
    the FAR hub's events (the ticks keep the near hub's exchange name and ``ts_recv``)."""
    planted = Secrets()
    protocol, args = venue_args(plugin)
    near_dir, far_dir = tmp_path / "near", tmp_path / "far"
    near_dir.mkdir()
    far_dir.mkdir()
    with nats_server(tmp_path) as url, venue(protocol, tmp_path, *args) as v:
        name, table = exchange_table(plugin, v.port, planted)
        sink = (
            f'[sinks.hop]\nkind = "nats"\nurl = "{url}"\n'
            'options = { prefix = "hop", heartbeat_ms = 200 }\n'
        )
        source = (
            f'[exchanges.remote]\nprotocol = "nats"\nendpoint = "{url}"\n'
            f'symbols = ["hop.{name}.>"]\noptions = {{ prefix = "hop" }}\n'
            "reconnect_delay_ms = 100\nreconnect_max_delay_ms = 500\n"
        )
        with hub_run(write_config(far_dir, source), planted.env()) as far:
            wait_until(
                "the far hub connected to NATS",
                lambda: any(
                    e["state"] == "connected" for e in state_events(far.events(), "remote")
                ),
            )
            with hub_run(write_config(near_dir, table, sink), planted.env()) as near:
                far.wait_data(20, exchange=name)
                frozen = time.time_ns()
                v.freeze()
                time.sleep(FREEZE_S)
                thawed = time.time_ns()
                v.thaw()
                far.wait_data(20, since_ns=thawed, exchange=name)
                near_code = near.stop()
            far_code = far.stop()
    out = _judge(far, name, planted, (frozen, thawed), far_code)
    out.problems += secret_problems(near, planted)
    if near_code != 0:
        out.problems.append(f"the near hub exited {near_code} after SIGTERM, expected 0")
    return out


def _judge(run: HubRun, name: str, planted: Secrets, fault: tuple[int, int], code: int) -> Outcome:
    events = run.events()
    out = Outcome(events, run, name)
    out.problems += coverage_problems(events, name, fault)
    out.problems += resumed_problems(events, name, fault[1])
    out.problems += secret_problems(run, planted)
    if code != 0:
        out.problems.append(f"hub run exited {code} after SIGTERM, expected 0")
    if TRACEBACK.encode() in run.stderr_bytes():
        out.problems.append("stderr holds a traceback")
    return out


def refused_scenario(
    config_for: Callable[[int, Secrets], tuple[str, str]],
    server: _Server,
    tmp_path: Path,
    reason: re.Pattern[str],
    planted: Secrets | None = None,
    final_state: str = "auth_failed",
) -> Outcome:
    """A venue behind ``server`` refuses the session. Problems: more or fewer than one
    connection attempt, a zero exit, a last stderr line not naming ``reason``, a
    traceback, a state other than ``final_state`` at the end (``dead`` for a refusal that
    is a configuration error, as TWS's client id in use), a leaked secret.

    ``reconnect_attempts = 0`` (retry forever) in ``config_for``'s table: a refusal must
    stop the connection even so. ``--duration`` bounds a hub that retries instead.
    """
    planted = planted or Secrets()
    name, table = config_for(server.port, planted)
    with hub_run(write_config(tmp_path, table), planted.env(), duration=12) as run:
        # a hub that already stopped has no page to fetch; its exit is judged below
        with suppress(AssertionError, OSError):
            run.fetch_metrics(timeout=20)
        run.wait()
    events = run.events()
    out = Outcome(events, run, name)
    if len(server.accepts) != 1:
        out.problems.append(f"the venue saw {len(server.accepts)} connection attempts, expected 1")
    out.problems += failed_exit_problems(run, reason)
    states = [e["state"] for e in state_events(events, name)]
    if final_state not in states:
        out.problems.append(f"no {final_state} state; states: {states[:12]}")
    out.problems += secret_problems(run, planted)
    return out


def rate_limited_scenario(tmp_path: Path, retry_after_s: int) -> tuple[Outcome, list[float]]:
    """A WebSocket venue answering every upgrade with 429 + ``Retry-After``.

    Problems: fewer than two attempts in the run (it must be retried, not refused),
    any attempt sooner than ``retry_after_s`` after the one before it (by the server's
    own accept times, minus 100 ms for clock granularity), an ``auth_failed`` state,
    a leaked secret.
    """
    planted = Secrets()
    with RefusingHttpServer(429, "Too Many Requests", {"Retry-After": str(retry_after_s)}) as srv:
        name, table = exchange_table("websocket-binance", srv.port, planted)
        with hub_run(
            write_config(tmp_path, table), planted.env(), duration=3.5 * retry_after_s
        ) as run:
            with suppress(AssertionError, OSError):
                run.fetch_metrics(timeout=20)
            run.wait()
        accepts = list(srv.accepts)
    events = run.events()
    out = Outcome(events, run, name)
    if len(accepts) < 2:
        out.problems.append(f"the venue saw {len(accepts)} connection attempts, expected >= 2")
    for i, (a, b) in enumerate(itertools.pairwise(accepts)):
        if b - a < retry_after_s - 0.1:
            out.problems.append(
                f"attempt {i + 2} came {b - a:.2f} s after attempt {i + 1}, "
                f"before the Retry-After of {retry_after_s} s"
            )
    states = [e["state"] for e in state_events(events, name)]
    if "auth_failed" in states:
        out.problems.append("a rate limit was treated as a refusal (auth_failed)")
    if not any("429" in str(e["reason"]) for e in state_events(events, name)):
        out.problems.append("no state event names the HTTP status 429")
    out.problems += secret_problems(run, planted)
    return out, accepts


def dead_endpoint_scenario(plugin: str, tmp_path: Path) -> Outcome:
    """A connection to a closed port with ``reconnect_attempts = 2``: it must give up,
    and ``hub run`` exits non-zero with a one-line reason, no traceback, no secret."""
    planted = Secrets()
    name, table = exchange_table(plugin, closed_port(), planted, reconnect_attempts=2)
    with hub_run(write_config(tmp_path, table), planted.env(), duration=30) as run:
        run.wait()
    events = run.events()
    out = Outcome(events, run, name)
    out.problems += failed_exit_problems(
        run, re.compile(r"refused|unreachable|gave up|reconnect", re.IGNORECASE)
    )
    states = [e["state"] for e in state_events(events, name)]
    if "dead" not in states:
        out.problems.append(f"no dead state; states: {states[:12]}")
    if any(e["type"] in DATA_TYPES for e in events):
        out.problems.append("data ticks from a closed port")
    out.problems += each_fact_once_problems(run, name)
    out.problems += secret_problems(run, planted)
    return out


def final_stop_scenario(plugin: str, tmp_path: Path) -> Outcome:
    """Data flows with ``reconnect_attempts = 2``; the venue is killed and never comes
    back. The connection must give up (``dead``), ``hub run`` exit non-zero with a
    one-line reason, and a Gap cover the time from the last data to the death."""
    planted = Secrets()
    protocol, args = venue_args(plugin)
    with venue(protocol, tmp_path, *args) as v:
        name, table = exchange_table(plugin, v.port, planted, reconnect_attempts=2)
        with hub_run(write_config(tmp_path, table), planted.env(), duration=30) as run:
            run.wait_data(20, exchange=name)
            run.fetch_metrics()
            v.kill()
            run.wait()
    events = run.events()
    out = Outcome(events, run, name)
    out.problems += failed_exit_problems(
        run, re.compile(r"refused|unreachable|gave up|reconnect|closed", re.IGNORECASE)
    )
    states = [e["state"] for e in state_events(events, name)]
    if "dead" not in states:
        out.problems.append(f"no dead state; states: {states[:12]}")
    # the core's check: the silence from the last tick to the final stop (any length)
    windows = trailing_windows(events, 0, name)
    if not windows:
        out.problems.append("harness: no data, or no final state, to measure the last window")
    else:
        for w in uncovered(windows, events, GAP_TOLERANCE_NS):
            out.problems.append(
                f"from the last data to the final stop, no Gap: {w} "
                f"({describe_gaps(events, name, w)})"
            )
    out.problems += secret_problems(run, planted)
    return out
