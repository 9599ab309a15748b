"""The source in another process (``hub run --jsonl``) and secrets: a NATS server with
a password, the password in both URLs, and in no output of either side."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from hub_core import ExchangeHub, SinkConfig

from .conftest import NatsServer, registry, until
from .test_roundtrip import key, market_ticks

pytestmark = pytest.mark.anyio
SECRET = "S3cret-pw-9f2Q"


@pytest.fixture
def auth_server(tmp_path: Path) -> Any:
    server = NatsServer(tmp_path / "js", "--user", "hub", "--pass", SECRET)
    try:
        yield server
    finally:
        server.stop()


def with_password(server: NatsServer, password: str = SECRET) -> str:
    return f"nats://hub:{password}@127.0.0.1:{server.port}"


async def read_lines(proc: Process, lines: list[str], errors: list[str]) -> None:
    async def pump(stream: Any, into: list[str]) -> None:
        buf = b""
        async for chunk in stream:
            buf += chunk
            *whole, buf = buf.split(b"\n")
            into.extend(w.decode() for w in whole)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump, proc.stdout, lines)
        tg.start_soon(pump, proc.stderr, errors)


MARKET = {"Trade", "Quote", "BookUpdate", "BookClear", "BookSnapshot"}


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in list(lines) if x.startswith("{")]


def _connected(events: list[dict[str, Any]]) -> bool:
    return any(e["type"] == "ConnectionStateChanged" and e["state"] == "connected" for e in events)


def _market_count(lines: list[str]) -> int:
    return sum(1 for e in parsed(lines) if e["type"] in MARKET)


async def publish(url: str, ticks: list[Any], lines: list[str]) -> str:
    """Publish ``ticks`` through a NATS sink until the other process printed them all;
    returns how the hub shows its sinks."""
    async with ExchangeHub(registry=registry()) as hub:
        runner = await hub.add_sink(
            SinkConfig(kind="nats", name="out", url=url, options={"prefix": "pp"})
        )
        await until(lambda: runner.state == "connected", what="the sink connected")
        src = hub._processor.sink_for("binance")
        for t in ticks:
            src.publish(t)
        await until(
            lambda: _market_count(lines) == len(ticks), seconds=20, what="every tick over there"
        )
        return str(hub.sink_status())


async def test_source_in_another_process_gets_every_tick_and_no_secret_shows(
    auth_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "hub.toml"
    config.write_text(
        f"""
[hub]
plugins = ["nats"]

[exchanges.remote]
protocol = "nats"
endpoint = "{with_password(auth_server)}"
symbols = ["pp.>"]
options = {{ prefix = "pp" }}
"""
    )
    lines: list[str] = []
    errors: list[str] = []
    cmd = [sys.executable, "-m", "hub_core.cli", "run", str(config), "--jsonl", "--duration", "30"]
    ticks = market_ticks()
    shown: list[str] = []
    async with (
        await anyio.open_process(cmd, stdin=subprocess.DEVNULL) as proc,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(read_lines, proc, lines, errors)
        await until(lambda: _connected(parsed(lines)), seconds=30, what="the other process up")
        shown.append(await publish(with_password(auth_server), ticks, lines))
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()
        tg.cancel_scope.cancel()
    events = parsed(lines)
    got = [e for e in events if e.get("exchange") == "binance" and e["type"] != "Gap"]
    # the JSON lines carry every field; the ticks' float conveniences are not fields
    keys = {e["type"]: set(e) for e in got}
    expected = []
    for t in ticks:
        fields = {k: v for k, v in key(t)[1:] if k in keys[type(t).__name__]}
        expected.append({"type": type(t).__name__, **fields})

    def norm(e: dict[str, Any]) -> str:
        e = {k: v for k, v in e.items() if k != "trade_id"}
        return json.dumps(e, sort_keys=True, default=list)

    received = sorted(norm(_plain_dict(e)) for e in got)
    sent = sorted(norm(_plain_dict(e)) for e in expected)
    assert received == sent
    everything = "\n".join([*lines, *errors, caplog.text, *shown])
    assert SECRET not in everything
    assert "hub:***@127.0.0.1" in "\n".join([*errors, *shown])


def _plain_dict(e: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in e.items()}


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


async def test_a_wrong_password_stops_the_sink_without_showing_it(
    auth_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-pass-77x"
    async with ExchangeHub(registry=registry()) as hub:
        runner = await hub.add_sink(
            SinkConfig(kind="nats", name="out", url=with_password(auth_server, wrong))
        )
        await until(lambda: runner.state == "auth_failed", what="the sink refused")
        status = hub.sink_status()["out"]
        from hub_core import AuthenticationError, ExchangeConfig

        with pytest.raises(AuthenticationError) as refused:
            await hub.connect_exchange(
                "remote",
                ExchangeConfig(
                    protocol="nats",
                    endpoint=with_password(auth_server, wrong),
                    symbols=["pp.>"],
                    options={"prefix": "pp"},
                ),
                timeout=10,
            )
    assert "refused the login" in status.reason
    everything = "\n".join([caplog.text, str(status), str(refused.value), repr(refused.value)])
    assert wrong not in everything and SECRET not in everything
