"""The ``hub`` command, run as a subprocess against the installed hub-core.

Core tests must not depend on which plugins happen to be installed, so the
commands that need a plugin use ``clitest``: a small but real plugin (a TCP
line protocol with its own simulator) written to a temporary directory as a
distribution with an entry point in group ``hub`` and put on PYTHONPATH, so
``hub`` discovers it exactly as it discovers an installed plugin.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hub_core
from hub_core import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    Quote,
    Side,
    Trade,
)
from hub_core.bus import TICK_TYPES

PLUGIN_SOURCE = '''
"""clitest: a line protocol over TCP, for the CLI tests.

Client -> server: "SUB <symbol>\\n", "PING\\n". Server -> client:
"T <symbol> <price> <size> <side>\\n", "Q <symbol> <bid> <bsize> <ask> <asize>\\n", "PONG\\n".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from hub_core import (
    ConnectionFactory,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    PluginOptions,
    SimulatorSpec,
    hookimpl,
)


class Options(PluginOptions):
    greeting: str = "hello"


class LineConnection:
    def __init__(self, config, sink) -> None:
        self.config = config
        self.sink = sink
        self.stream: SocketStream | None = None
        self.reader: BufferedByteReceiveStream | None = None
        self.last = 0
        self.endpoint = ""

    async def connect(self, endpoint: str) -> None:
        host, _, port = endpoint.rpartition(":")
        self.endpoint = endpoint
        self.stream = await anyio.connect_tcp(host.strip("[]"), int(port))
        self.reader = BufferedByteReceiveStream(self.stream)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        assert self.stream is not None
        await self.stream.send(b"".join(b"SUB " + s.encode() + b"\\n" for s in symbols))

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        pass

    async def run(self) -> None:
        assert self.reader is not None
        while True:
            try:
                line = await self.reader.receive_until(b"\\n", 4096)
            except (anyio.IncompleteRead, anyio.EndOfStream):
                raise ConnectionFailed("closed by the simulator", endpoint=self.endpoint) from None
            self.last = time.monotonic_ns()
            now = time.time_ns()
            parts = line.decode().split()
            if parts and parts[0] == "T" and len(parts) == 5:
                self.sink.trade_text(parts[1], parts[2], parts[3], parts[4], now, now)
            elif parts and parts[0] == "Q" and len(parts) == 6:
                self.sink.quote_text(parts[1], parts[2], parts[3], parts[4], parts[5], now, now)
            elif parts != ["PONG"]:
                self.sink.malformed(f"unknown line {line[:40]!r}")

    async def probe(self) -> None:
        if self.stream is not None:
            await self.stream.send(b"PING\\n")

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()

    def health(self) -> ConnectionHealth:
        return ConnectionHealth(self.stream is not None, self.endpoint, self.last)


async def serve(
    host: str, port: int, symbols: list[str], rate: float, ready: Callable[[str, int], None]
) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)

    async def client(stream: SocketStream) -> None:
        subscribed: list[str] = []
        reader = BufferedByteReceiveStream(stream)

        async def read() -> None:
            while True:
                parts = (await reader.receive_until(b"\\n", 4096)).decode().split()
                if parts[:1] == ["SUB"] and parts[1] in symbols:
                    subscribed.append(parts[1])
                elif parts == ["PING"]:
                    await stream.send(b"PONG\\n")

        async with stream, anyio.create_task_group() as tg:
            tg.start_soon(read)
            n = 0
            while True:
                await anyio.sleep(1.0 / rate)
                n += 1
                for s in list(subscribed):
                    await stream.send(
                        f"T {s} 100.25 {n} B\\nQ {s} 100.0 5 100.5 7\\n".encode()
                    )

    async def guarded(stream: SocketStream) -> None:
        try:
            await client(stream)
        except* (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass  # the client went away

    async with listener:
        ready(host, listener.extra(SocketAttribute.local_port))
        await listener.serve(guarded)


def demo_config(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    return ExchangeConfig(protocol="clitest", endpoint=endpoint, symbols=symbols)


class LineFactory(ConnectionFactory):
    protocol = "clitest"
    options_model = Options

    def create(self, config, sink):
        return LineConnection(config, sink)

    def simulator(self) -> SimulatorSpec:
        return SimulatorSpec(serve, demo_config, ["AAA", "BBB"], 50.0)


@hookimpl
def hub_connection_factories() -> list[ConnectionFactory]:
    return [LineFactory()]
'''

BROKEN_PLUGIN_SOURCE = 'raise ImportError("clitest_broken needs a library that is not installed")\n'

TRADE_PRICE = 100_250_000_000  # "100.25" at 1e9
SECRET = "s3cr3t-VALUE-never-printed"


def _dist(site: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[hub]\n{ep_name} = {module}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    _dist(site, "hub-plugin-clitest", "clitest_plugin", PLUGIN_SOURCE, "clitest")
    return site


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("broken-site")
    _dist(site, "hub-plugin-clitest-broken", "clitest_broken", BROKEN_PLUGIN_SOURCE, "broken")
    return site


def _env(*sites: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLITEST_")}
    env["PYTHONPATH"] = os.pathsep.join(str(s) for s in sites)
    env["PYTHONUNBUFFERED"] = "0"
    env.update(extra)
    return env


def hub_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub_core.cli", *args]


def run_hub(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hub_cmd(*args),
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def jsonl_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("hub: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


class SimProcess:
    """``hub sim clitest`` running in the background."""

    def __init__(self, proc: subprocess.Popen[str], first_line: str, port: int) -> None:
        self.proc = proc
        self.first_line = first_line
        self.port = port


@pytest.fixture
def clitest_sim(plugin_site: Path, tmp_path: Path) -> Iterator[SimProcess]:
    with subprocess.Popen(
        hub_cmd("sim", "clitest", "--port", "0", "--rate", "50"),
        env=_env(plugin_site),
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
            yield SimProcess(proc, first, int(m.group(1)))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()


def write_config(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# -- --version, plugins ---------------------------------------------------------------
def test_version_names_the_build(tmp_path: Path) -> None:
    res = run_hub("--version", env=_env(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    build = "compiled with mypyc" if hub_core.COMPILED else "pure Python"
    assert res.stdout.strip() == f"hub-core {hub_core.__version__} ({build})"


def test_plugins_json_lists_a_discovered_plugin(plugin_site: Path, tmp_path: Path) -> None:
    res = run_hub("plugins", "--json", env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    plugins = json.loads(res.stdout)
    assert isinstance(plugins, list)
    by_name = {p["name"]: p for p in plugins}
    entry = by_name["clitest"]
    assert set(entry) >= {
        "name",
        "distribution",
        "version",
        "protocols",
        "enabled",
        "error",
        "simulators",
    }
    assert entry["distribution"] == "hub-plugin-clitest"
    assert entry["version"] == "0.1.0"
    assert entry["protocols"] == ["clitest"]
    assert entry["simulators"] == ["clitest"]
    assert entry["enabled"] is True
    assert entry["error"] == ""


def test_plugins_reports_a_plugin_that_fails_to_import(
    plugin_site: Path, broken_site: Path, tmp_path: Path
) -> None:
    res = run_hub("plugins", "--json", env=_env(plugin_site, broken_site), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    by_name = {p["name"]: p for p in json.loads(res.stdout)}
    assert by_name["broken"]["enabled"] is False
    assert "failed to load" in by_name["broken"]["error"]
    assert by_name["clitest"]["enabled"] is True  # one broken plugin never hides the rest

    table = run_hub("plugins", env=_env(plugin_site, broken_site), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "clitest" in table.stdout and "broken" in table.stdout


# -- check ----------------------------------------------------------------------------
GOOD_CONFIG = """
    [hub]
    plugins = ["clitest"]

    [exchanges.feed]
    protocol = "clitest"
    endpoint = "127.0.0.1:7496"
    symbols = ["AAA", "BBB"]
    options = { greeting = "hi" }
"""


def test_check_accepts_a_good_config(plugin_site: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "hub.toml", GOOD_CONFIG)
    res = run_hub("check", str(cfg), env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK")
    assert "1 exchange, protocols: clitest, 2 symbols" in res.stdout
    assert "[exchanges.feed]" in res.stdout
    assert "AAA, BBB" in res.stdout


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (  # misspelled key
            GOOD_CONFIG.replace("symbols =", "symbolz ="),
            "exchanges.feed.symbolz",
        ),
        (  # wrong type
            GOOD_CONFIG + "    reconnect_attempts = -1\n",
            "exchanges.feed.reconnect_attempts",
        ),
        (  # no plugin for the protocol
            GOOD_CONFIG.replace('protocol = "clitest"', 'protocol = "nosuch"'),
            "exchanges.feed.protocol",
        ),
        (  # the plugin's options model refuses it
            GOOD_CONFIG.replace("greeting", "greting"),
            "exchanges.feed.options.greting",
        ),
        (  # a secret written into the file
            GOOD_CONFIG + f'    [exchanges.feed.credentials]\n    api_key = "{SECRET}"\n',
            "exchanges.feed.credentials.api_key",
        ),
        (  # an unset environment variable
            GOOD_CONFIG + '    [exchanges.feed.credentials]\n    api_key_env = "CLITEST_UNSET"\n',
            "CLITEST_UNSET",
        ),
        ("[exchanges.feed\n", "not valid TOML"),
    ],
)
def test_check_names_the_bad_key_and_exits_2(
    body: str, key: str, plugin_site: Path, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "hub.toml", body)
    res = run_hub("check", str(cfg), env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    line = one_error_line(res.stderr)
    assert key in line
    assert SECRET not in res.stdout + res.stderr
    assert res.stdout == ""


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    res = run_hub("check", str(tmp_path / "nope.toml"), env=_env(), cwd=tmp_path)
    assert res.returncode == 2
    assert "does not exist" in one_error_line(res.stderr)


def test_check_a_directory_exits_2(tmp_path: Path) -> None:
    res = run_hub("check", str(tmp_path), env=_env(), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    line = one_error_line(res.stderr)
    assert "is a directory, not a config file" in line and "hub.toml" in line


def test_check_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_bytes(b'[exchanges.feed]\nprotocol = "clitest"\nendpoint = "caf\xe9"\n')
    res = run_hub("check", str(cfg), env=_env(), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    line = one_error_line(res.stderr)
    assert "line 3 is not UTF-8 (byte 0xe9)" in line and "re-save" in line


def test_check_never_prints_secrets(plugin_site: Path, tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "hub.toml",
        GOOD_CONFIG.replace(
            'endpoint = "127.0.0.1:7496"',
            f'endpoint = "wss://trader:{SECRET}@127.0.0.1:9443/ws?token={SECRET}&depth=5"',
        )
        + '    [exchanges.feed.credentials]\n    api_key_env = "CLITEST_KEY"\n'
        + '    api_secret_env = "CLITEST_SECRET"\n',
    )
    env = _env(plugin_site, CLITEST_KEY=SECRET, CLITEST_SECRET=SECRET + "2")
    res = run_hub("check", str(cfg), env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert SECRET not in out
    assert "CLITEST_KEY" in out and "CLITEST_SECRET" in out
    assert "depth=5" in out  # only the secret parts are masked
    assert "trader:***@127.0.0.1:9443" in out


# -- sim ------------------------------------------------------------------------------
def test_sim_unknown_protocol_lists_the_available_ones(plugin_site: Path, tmp_path: Path) -> None:
    res = run_hub("sim", "nosuch", env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 2
    line = one_error_line(res.stderr)
    assert "'nosuch'" in line and "available: clitest" in line
    assert res.stdout == ""


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.com"])
def test_sim_refuses_a_non_loopback_host(host: str, plugin_site: Path, tmp_path: Path) -> None:
    res = run_hub("sim", "clitest", "--host", host, env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 2
    line = one_error_line(res.stderr)
    assert host in line and "--allow-remote" in line
    assert res.stdout == ""


def test_sim_listens_and_serves(clitest_sim: SimProcess) -> None:
    assert clitest_sim.first_line == f"listening on 127.0.0.1:{clitest_sim.port}"
    with socket.create_connection(("127.0.0.1", clitest_sim.port), timeout=10) as s:
        s.sendall(b"SUB AAA\n")
        data = b""
        while b"\n" not in data:
            data += s.recv(4096)
    assert data.split(b"\n")[0].startswith(b"T AAA 100.25 ")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sim_stops_cleanly_on_a_signal(clitest_sim: SimProcess, signum: int) -> None:
    clitest_sim.proc.send_signal(signum)
    _, err = clitest_sim.proc.communicate(timeout=15)
    assert clitest_sim.proc.returncode == 0, err
    assert "Traceback" not in err


def test_sim_port_in_use_is_a_one_line_error(plugin_site: Path, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_hub("sim", "clitest", "--port", str(port), env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 1
    line = one_error_line(res.stderr)
    assert "clitest simulator could not listen" in line and f"127.0.0.1:{port}" in line
    assert res.stdout == ""


# -- run ------------------------------------------------------------------------------
def _run_config(tmp_path: Path, port: int, **extra: object) -> Path:
    lines = [
        "[exchanges.feed]",
        'protocol = "clitest"',
        f'endpoint = "127.0.0.1:{port}"',
        'symbols = ["AAA", "BBB"]',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return write_config(tmp_path / "hub.toml", "\n".join(lines) + "\n")


def test_run_exits_nonzero_when_every_connection_is_dead(plugin_site: Path, tmp_path: Path) -> None:
    cfg = _run_config(
        tmp_path,
        closed_port(),
        reconnect_attempts=1,
        reconnect_delay_ms=50,
        reconnect_max_delay_ms=100,
    )
    # run_hub's timeout bounds it: giving up is an outcome, not a wait
    res = run_hub("run", str(cfg), "--jsonl", env=_env(plugin_site), cwd=tmp_path, timeout=30)
    assert res.returncode == 1, (res.stdout, res.stderr)
    line = one_error_line(res.stderr)
    assert "feed" in line and "dead" in line and "reconnect" in line
    events = jsonl_events(res.stdout)
    states = [e["state"] for e in events if e["type"] == "ConnectionStateChanged"]
    assert states[0] == "connecting"
    assert "dead" in states
    for e in events:
        assert e["exchange"] == "feed"
        assert set(e) == {"type", *ConnectionStateChanged("x", "s", "", 0, 0).as_dict()}


def test_run_jsonl_streams_trades_and_stops_after_duration(
    clitest_sim: SimProcess, plugin_site: Path, tmp_path: Path
) -> None:
    cfg = _run_config(tmp_path, clitest_sim.port)
    res = run_hub(
        "run", str(cfg), "--jsonl", "--duration", "2", env=_env(plugin_site), cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    events = jsonl_events(res.stdout)
    trades = [e for e in events if e["type"] == "Trade"]
    quotes = [e for e in events if e["type"] == "Quote"]
    assert trades and quotes
    trade_keys = {"type", *Trade("x", "s", 0, 0, Side.NONE, 0, 0).as_dict()}
    for t in trades:
        assert set(t) == trade_keys
        assert t["exchange"] == "feed"
        assert t["symbol"] in ("AAA", "BBB")
        assert t["price"] == TRADE_PRICE and isinstance(t["price"], int)
        assert t["side"] == Side.BUY
    assert quotes[0]["bid_price"] == 100_000_000_000
    assert quotes[0]["ask_size"] == 7_000_000_000
    states = [e["state"] for e in events if e["type"] == "ConnectionStateChanged"]
    assert states[:2] == ["connecting", "connected"]
    assert states[-1] == "closed"  # the hub closed cleanly and the event still got written


def test_run_without_a_tty_prints_plain_status_on_stderr(
    clitest_sim: SimProcess, plugin_site: Path, tmp_path: Path
) -> None:
    cfg = _run_config(tmp_path, clitest_sim.port)
    res = run_hub("run", str(cfg), "--duration", "2.5", env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    status = [ln for ln in res.stderr.splitlines() if ln.startswith("hub ")]
    assert status, res.stderr
    assert "feed connected" in status[0]
    assert "msg/s" in status[0] and "latency" in status[0]


def test_run_stops_cleanly_on_sigterm_and_when_the_reader_goes_away(
    clitest_sim: SimProcess, plugin_site: Path, tmp_path: Path
) -> None:
    cfg = _run_config(tmp_path, clitest_sim.port)
    env = _env(plugin_site)
    with subprocess.Popen(
        hub_cmd("run", str(cfg), "--jsonl", "--duration", "60"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert '"type":"Trade"' in _read_until(proc.stdout, '"type":"Trade"')
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert json.loads(out.splitlines()[-1])["state"] == "closed"

    # `hub run --jsonl | head -1`: the reader closes the pipe; a clean stop, no traceback
    with subprocess.Popen(
        hub_cmd("run", str(cfg), "--jsonl", "--duration", "60"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        rc = proc.wait(timeout=20)  # a closed pipe stops the run (bounded, not timed)
        err_bytes = proc.stderr.read()
    assert rc == 0, err_bytes
    assert b"Traceback" not in err_bytes and b"Exception ignored" not in err_bytes


def _read_until(stream: io.TextIOBase | Any, needle: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not seen in {seen[-5:]!r}")


def test_run_serves_prometheus_metrics(
    clitest_sim: SimProcess, plugin_site: Path, tmp_path: Path
) -> None:
    cfg = _run_config(tmp_path, clitest_sim.port)
    with subprocess.Popen(
        hub_cmd("run", str(cfg), "--jsonl", "--duration", "30", "--metrics-port", "0"),
        env=_env(plugin_site),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        line = _read_until(proc.stderr, "metrics on ")
        m = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert m, line
        url = f"http://127.0.0.1:{m.group(1)}/metrics"
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            if re.search(r'hub_trades_total\{exchange="feed"\} [1-9]', text):
                break
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert re.search(r'hub_trades_total\{exchange="feed"\} [1-9]', text), text
    assert 'hub_connection_up{exchange="feed",protocol="clitest"} 1.0' in text
    assert 'hub_connection_state{exchange="feed",state="connected"} 1.0' in text
    assert 'hub_connection_quiet{exchange="feed"} 0.0' in text
    m = re.search(r'hub_last_message_timestamp_seconds\{exchange="feed"\} ([0-9.e+]+)', text)
    assert m and float(m.group(1)) > 1.7e9, text  # a real wall-clock time, not 0
    assert "hub_uptime_seconds" in text


def test_run_config_error_exits_2(plugin_site: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "hub.toml", GOOD_CONFIG.replace("greeting", "greting"))
    res = run_hub("run", str(cfg), "--jsonl", env=_env(plugin_site), cwd=tmp_path)
    assert res.returncode == 2
    assert "exchanges.feed.options.greting" in one_error_line(res.stderr)
    assert res.stdout == ""


def test_run_metrics_port_in_use_is_a_fatal_error(plugin_site: Path, tmp_path: Path) -> None:
    cfg = _run_config(tmp_path, closed_port())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_hub(
            "run",
            str(cfg),
            "--jsonl",
            "--metrics-port",
            str(port),
            env=_env(plugin_site),
            cwd=tmp_path,
        )
    assert res.returncode == 1
    line = one_error_line(res.stderr)
    assert f"cannot serve metrics on 127.0.0.1:{port}" in line and "already in use" in line


# -- demo -----------------------------------------------------------------------------
def test_demo_connects_to_every_simulator(plugin_site: Path, tmp_path: Path) -> None:
    res = run_hub(
        "demo", "--duration", "2", "--jsonl", "--rate", "20", env=_env(plugin_site), cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    events = jsonl_events(res.stdout)
    trades = [e for e in events if e["type"] == "Trade" and e["exchange"] == "clitest"]
    assert {t["symbol"] for t in trades} == {"AAA", "BBB"}
    endpoints = {
        e["endpoint"]
        for e in events
        if e["type"] == "ConnectionStateChanged" and e["exchange"] == "clitest"
    }
    assert endpoints and all(ep.startswith("127.0.0.1:") for ep in endpoints)


def test_demo_plugins_selects_simulators(
    plugin_site: Path, broken_site: Path, tmp_path: Path
) -> None:
    env = _env(plugin_site, broken_site)
    res = run_hub(
        "demo", "--plugins", "clitest", "--duration", "1", "--jsonl", env=env, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    exchanges = {e["exchange"] for e in jsonl_events(res.stdout)}
    assert exchanges == {"clitest"}  # other installed simulators are left out

    res = run_hub("demo", "--plugins", "broken", "--duration", "1", env=env, cwd=tmp_path)
    assert res.returncode == 1
    line = one_error_line(res.stderr)
    assert "no installed plugin ships a simulator" in line
    assert "broken: failed to load" in line and "pip install" in line
    assert res.stdout == ""


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_hub(env=_env(), cwd=tmp_path).returncode == 2
    assert run_hub("run", env=_env(), cwd=tmp_path).returncode == 2
    res = run_hub("demo", "--duration", "-1", env=_env(), cwd=tmp_path)
    assert res.returncode == 2 and "must be > 0" in res.stderr


# -- in-process: the pieces behind the commands -----------------------------------------
def _sample_events() -> list[object]:
    return [
        Trade("feed", "ES", 4500_250_000_000, 2_000_000_000, Side.SELL, 1, 2, 7, "t-1"),
        Quote("feed", "ES", 4500_000_000_000, 1_000_000_000, 4500_500_000_000, 3, 4, 5, 6),
        BookUpdate("feed", "ES", Side.BID, 4499_000_000_000, 0, 1, 2, "C", 99, 3),
        BookSnapshot("feed", "ES", ((1, 2), (3, 4)), ((5, 6),), 7, 8, 9),
        BookClear("feed", "ES", 7, 8, 10, "venue reset"),
        Gap("feed", "", 10, 20, 'blind "while" reconnecting\n', 1, 2),
        ConnectionStateChanged("feed", "connected", "subscribed 1 symbols", 1, 2, "h:1", 0),
    ]


def test_jsonl_lines_carry_type_and_every_field() -> None:
    from hub_core.bus import TypedEventBus
    from hub_core.cli.jsonl import JsonlWriter, event_to_json

    out = io.BytesIO()
    bus = TypedEventBus()
    writer = JsonlWriter(out)
    writer.attach(bus)
    events = _sample_events()
    assert {type(e) for e in events} == set(TICK_TYPES)
    for e in events:
        bus.publish(e)
    assert out.getvalue() == b""  # batched, not written per event
    writer.close()
    lines = out.getvalue().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) - 1 == len(events)
    for line, event in zip(lines, events, strict=False):
        assert line == event_to_json(event)
        decoded = json.loads(line)
        assert decoded == {"type": type(event).__name__, **json.loads(json.dumps(_as_dict(event)))}
        assert list(decoded)[:3] == ["type", "exchange", "symbol"]
    bus.publish(events[0])  # detached: nothing more
    writer.flush()
    assert len(out.getvalue().split(b"\n")) == len(lines)


def _as_dict(event: object) -> dict[str, object]:
    result: dict[str, object] = event.as_dict()  # type: ignore[attr-defined]
    return result


def test_jsonl_flushes_at_high_water_and_stops_on_a_broken_pipe() -> None:
    from hub_core.bus import TypedEventBus
    from hub_core.cli.jsonl import JsonlWriter

    class ClosedPipe(io.RawIOBase):
        writes = 0

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            ClosedPipe.writes += 1
            raise BrokenPipeError(32, "Broken pipe")

    stopped: list[bool] = []
    bus = TypedEventBus()
    writer = JsonlWriter(ClosedPipe(), on_closed=lambda: stopped.append(True), high_water=200)
    writer.attach(bus)
    trade = _sample_events()[0]
    bus.publish(trade)
    assert ClosedPipe.writes == 0
    for _ in range(5):
        bus.publish(trade)
    assert ClosedPipe.writes == 1 and writer.closed and stopped == [True]
    for _ in range(50):
        bus.publish(trade)
    writer.close()
    assert ClosedPipe.writes == 1  # nothing is written after the reader went away
    assert bus.handler_errors == 0


def test_redaction() -> None:
    from hub_core.redact import redact_endpoint, redact_options

    assert redact_endpoint("127.0.0.1:7496") == "127.0.0.1:7496"
    assert (
        redact_endpoint("wss://u:pw@host:1/ws?api_key=k&x=1")
        == "wss://u:***@host:1/ws?api_key=***&x=1"
    )
    assert redact_endpoint("wss://tok@host/ws") == "wss://***@host/ws"
    assert redact_endpoint("user:pw@10.0.0.1:7496") == "***@10.0.0.1:7496"
    assert redact_options({"dialect": "binance", "token": "t", "sub": {"secret": 1}}) == {
        "dialect": "binance",
        "token": "***",
        "sub": {"secret": "***"},
    }


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "failed ws://alice:PW@127.0.0.1:5/ws?token=TOK.",
            "failed ws://alice:***@127.0.0.1:5/ws?token=***.",
        ),
        ("login alice:PW@127.0.0.1:80 refused", "login ***@127.0.0.1:80 refused"),
        ("use fixs://; retrying in 32 ms", "use fixs://; retrying in 32 ms"),
        ("see wss://host/ws?a=1&b=2, then", "see wss://host/ws?a=1&b=2, then"),
        ("mail a@b.com at 127.0.0.1:80", "mail a@b.com at 127.0.0.1:80"),
    ],
)
def test_urls_inside_text_are_redacted_and_otherwise_untouched(text: str, shown: str) -> None:
    from hub_core.redact import redact_text

    assert redact_text(text) == shown


def test_the_secret_mask_catches_known_values_anywhere() -> None:
    from hub_core.redact import SecretMask, endpoint_secrets

    mask = SecretMask()
    mask.add(*endpoint_secrets("ws://alice:Hunter22@127.0.0.1/ws?token=T0KEN9&depth=5"))
    mask.add("pw")  # too short to mask without mangling ordinary words
    assert mask.mask("a library said: bad password Hunter22 / T0KEN9 (pw)") == (
        "a library said: bad password *** / *** (pw)"
    )


def test_loopback_detection() -> None:
    from hub_core.cli.demo import host_port, is_loopback

    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.com", ""):
        assert not is_loopback(host), host
    assert host_port("::1", 5) == "[::1]:5"
    assert host_port("127.0.0.1", 5) == "127.0.0.1:5"


def test_rate_tracker_measures_messages_per_second() -> None:
    from hub_core.bus import TypedEventBus
    from hub_core.cli.live_view import RateTracker
    from hub_core.processor import EventProcessor

    proc = EventProcessor(TypedEventBus())
    sink = proc.sink_for("feed")
    rates = RateTracker(window_s=1.0)
    assert rates.update(proc.get_stats(), now=100.0) == {}
    for i in range(30):
        sink.trade("ES", 1, 1, Side.BUY, i, i)
    for i in range(20):
        sink.quote("ES", 1, 1, 2, 1, i, i)
    assert rates.update(proc.get_stats(), now=100.5) == {}  # window not over yet
    assert rates.update(proc.get_stats(), now=102.0) == {"feed": 25.0}


def test_live_view_renders_connections_last_ticks_and_latency() -> None:
    from rich.console import Console

    from hub_core.cli.live_view import LiveView

    hub = ExchangeHub(registry=ExchangeRegistry())
    console = Console(file=io.StringIO(), width=220, force_terminal=False, color_system=None)
    view = LiveView(hub, "hub test", console=console)
    view.attach()
    sink = hub.event_processor().sink_for("feed")
    now = time.time_ns()
    sink.trade("ES", 4500_250_000_000, 3_000_000_000, Side.SELL, now, now)
    sink.quote("ES", 4500_000_000_000, 1_000_000_000, 4500_500_000_000, 2_000_000_000, now, now)
    sink.trade("NQ", 15000_000_000_000, 1_000_000_000, Side.BUY, now, now)
    first = view.last.trades[("feed", "ES")]
    sink.trade("ES", 4501_000_000_000, 1_000_000_000, Side.BUY, now, now)
    assert view.last.trades[("feed", "ES")] is not first  # the newest, by reference
    console.print(view.render())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "hub test" in text
    assert "4501" in text and "4500.5" in text and "15000" in text
    assert "latency" in text and "uptime" in text
    view.close()


def test_metrics_snapshot_exposes_counters() -> None:
    from prometheus_client import generate_latest

    from hub_core.cli.metrics import HubMetrics

    hub = ExchangeHub(registry=ExchangeRegistry())
    sink = hub.event_processor().sink_for("feed")
    metrics = HubMetrics(hub)
    sink.trade("ES", 1, 1, Side.BUY, 1, 1)
    before = generate_latest(metrics.registry).decode()
    assert 'hub_trades_total{exchange="feed"} 0.0' in before  # a snapshot, not the live dict
    metrics.refresh()
    after = generate_latest(metrics.registry).decode()
    assert 'hub_trades_total{exchange="feed"} 1.0' in after
    assert "hub_malformed_frames_total" in after and "hub_stream_dropped_total" in after
    assert f'hub_info{{compiled="{str(hub_core.COMPILED).lower()}"' in after
    assert 'hub_latency_seconds_count{exchange="feed"} 0.0' in after  # no samples yet
    for ns in range(1_000, 101_000, 1_000):
        sink.latency.record(ns)
    metrics.refresh()
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE hub_latency_seconds histogram" in text and "quantile" not in text
    assert 'hub_latency_seconds_bucket{exchange="feed",le="1e-05"} 10.0' in text
    assert 'hub_latency_seconds_bucket{exchange="feed",le="0.0001"} 100.0' in text
    assert 'hub_latency_seconds_bucket{exchange="feed",le="+Inf"} 100.0' in text
    assert 'hub_latency_seconds_count{exchange="feed"} 100.0' in text
    assert 'hub_latency_seconds_sum{exchange="feed"} 0.00505' in text


def test_thread_safety_of_metrics_collect() -> None:
    """The HTTP thread reads only the swapped-in snapshot list, never a dict being changed."""
    from hub_core.cli.metrics import HubMetrics

    hub = ExchangeHub(registry=ExchangeRegistry())
    metrics = HubMetrics(hub)
    errors: list[BaseException] = []
    stop = threading.Event()

    def scrape() -> None:
        try:
            while not stop.is_set():
                list(metrics.collect())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=scrape)
    t.start()
    try:
        for i in range(300):
            hub.event_processor().sink_for(f"feed{i}")
            metrics.refresh()
    finally:
        stop.set()
        t.join()
    assert not errors
