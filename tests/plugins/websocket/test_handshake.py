"""A venue that answers the WebSocket upgrade with an HTTP status instead of ``101``.

401/403 is a refusal (``AuthenticationError``: one attempt, then ``auth_failed``; real
venues ban IPs that hammer them), 429/418 a rate limit (``RateLimited`` with the
``Retry-After``), any other status a transient ``ConnectionFailed``. Classified in one
place (``classify_connect_failure``) for both transports, direct and through a proxy,
and tested against the simulators' ``upgrade_status`` fault.
"""

from __future__ import annotations

import email.utils
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import hub_plugin_websocket
from hub_core import (
    AuthenticationError,
    ConnectionFailed,
    ConnectionState,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    RateLimited,
    SubscriptionError,
    Trade,
    TypedEventBus,
)
from hub_core.processor import EventProcessor
from hub_core.testing import EventRecorder
from hub_plugin_websocket.connection import classify_connect_failure
from hub_plugin_websocket.factory import WebSocketFactory
from hub_plugin_websocket.simulator import BinanceSimulator, simulator_options
from hub_plugin_websocket.simulators import CoinbaseSimulator, KrakenSimulator, UpgradeFault
from hub_plugin_websocket.transports import (
    ConnectFailed,
    TransportSettings,
    new_transport,
    parse_retry_after,
)
from tests.plugins.websocket.conftest import FAST
from tests.plugins.websocket.test_transport_proxy import ConnectProxy

pytestmark = pytest.mark.anyio

VENUES: dict[str, tuple[type[Any], list[str], list[str]]] = {
    "binance": (BinanceSimulator, ["BTCUSDT"], ["trade"]),
    "coinbase": (CoinbaseSimulator, ["BTC-USD"], ["matches"]),
    "kraken": (KrakenSimulator, ["BTC/USD"], ["trade"]),
}


# -- Retry-After and the classification, without sockets ------------------------------------------
def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert parse_retry_after(None) == 0.0
    assert parse_retry_after("") == 0.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") == 0.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 29.0 <= parse_retry_after(date, now=now) <= 31.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("99999999") == 3600.0  # capped


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_refusals_naming_the_status(status: int) -> None:
    err = classify_connect_failure(
        ConnectFailed("x", status=status), exchange="v", endpoint="ws://u:SECRET@127.0.0.1/ws"
    )
    assert isinstance(err, AuthenticationError)
    assert f"HTTP {status}" in str(err)
    assert "SECRET" not in str(err)


@pytest.mark.parametrize("status", [429, 418])
def test_429_and_418_are_rate_limits_with_retry_after(status: int) -> None:
    err = classify_connect_failure(
        ConnectFailed("x", status=status, retry_after_s=12.0), exchange="v", endpoint=""
    )
    assert isinstance(err, RateLimited)
    assert err.retry_after_s == 12.0 and f"HTTP {status}" in str(err)


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_other_statuses_are_transient(status: int) -> None:
    err = classify_connect_failure(ConnectFailed("x", status=status), exchange="v", endpoint="")
    assert type(err) is ConnectionFailed
    assert f"HTTP {status}" in str(err)


def test_the_fault_is_an_option_of_every_simulator() -> None:
    for venue in ("binance", "binance-futures", "coinbase", "kraken"):
        assert simulator_options(venue, {"upgrade_status": "429", "upgrade_retry_after": "3"}) == {
            "upgrade_status": 429,
            "upgrade_retry_after": "3",
        }
    with pytest.raises(ValueError, match="upgrade_status"):
        simulator_options("binance", {"upgrade_status": "four"})
    with pytest.raises(ValueError, match="upgrade_status"):
        BinanceSimulator(["BTCUSDT"], upgrade_status=200)


# -- each transport, direct and proxied -----------------------------------------------------------
WAYS = [("websockets", False), ("picows", False), ("websockets", True)]


@pytest.fixture
async def env_proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ConnectProxy]:
    async with ConnectProxy() as p:
        for name in ("ws_proxy", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{p.port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        yield p


@pytest.mark.parametrize(("transport", "proxied"), WAYS)
@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(401, None, 0.0), (403, None, 0.0), (429, "2", 2.0), (418, None, 0.0), (503, "1", 1.0)],
)
async def test_each_transport_reports_the_status_and_retry_after(
    transport: str,
    proxied: bool,
    status: int,
    retry_after: str | None,
    expected: float,
    env_proxy: ConnectProxy,
) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=0) as sim:
        sim.refuse_upgrades(status, retry_after)
        settings = TransportSettings(
            url=sim.endpoint, ssl=None, max_size=1 << 20, open_timeout=5, use_proxy=proxied
        )
        with pytest.raises(ConnectFailed) as info:
            await new_transport(transport).connect(settings)  # type: ignore[arg-type]
        assert info.value.status == status
        assert info.value.retry_after_s == expected
        assert sim.upgrades_refused == 1
        assert env_proxy.tunnels == ([sim.host_port] if proxied else [])


# -- the connection, on every venue and both transports -------------------------------------------
def _config(venue: str, endpoint: str, transport: str, **overrides: Any) -> ExchangeConfig:
    _, symbols, channels = VENUES[venue]
    return ExchangeConfig.websocket(
        venue,
        endpoint,
        symbols=symbols,
        options={"channels": channels, "transport": transport, "dialect": venue},
        **(FAST | overrides),
    )


@pytest.mark.parametrize("venue", sorted(VENUES))
@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, AuthenticationError), (403, AuthenticationError), (429, RateLimited)],
)
async def test_connect_raises_the_classified_error(
    venue: str, status: int, kind: type[Exception], transport: str
) -> None:
    cls, symbols, _ = VENUES[venue]
    async with cls(symbols, rate=0, upgrade_status=status, upgrade_retry_after="5") as sim:
        assert isinstance(sim, UpgradeFault)
        cfg = _config(venue, sim.endpoint, transport)
        conn = WebSocketFactory().create(cfg, EventProcessor(TypedEventBus()).sink_for(venue))
        with pytest.raises(kind, match=f"HTTP {status}") as info:
            await conn.connect(sim.endpoint)
        if isinstance(info.value, RateLimited):
            assert info.value.retry_after_s == 5.0
        await conn.close()
        assert sim.upgrades_refused == 1


# -- through the hub: one attempt for a refusal, retries for the rest ------------------------------
async def _hub(cfg: ExchangeConfig) -> tuple[ExchangeHub, EventRecorder]:
    registry = ExchangeRegistry()
    info = registry.register(hub_plugin_websocket, name="websocket")
    assert info.enabled, info.error
    bus = TypedEventBus()
    return ExchangeHub(bus, registry=registry), EventRecorder(bus)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_upgrade_is_tried_once_then_auth_failed(
    status: int, transport: str
) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=0, upgrade_status=status) as sim:
        hub, rec = await _hub(hub_cfg(sim, transport))
        async with hub:
            with pytest.raises(AuthenticationError, match=f"HTTP {status}"):
                await hub.connect_exchange("binance", hub_cfg(sim, transport), timeout=10)
            await rec.wait_for(
                lambda: ConnectionState.AUTH_FAILED in rec.states(), 10, "auth_failed"
            )
            # many reconnect delays (50 ms) later, still the one attempt
            await anyio.sleep(0.5)
            assert sim.upgrades_refused == 1
            assert ConnectionState.RECONNECTING not in rec.states()
        rec.close()


def hub_cfg(sim: BinanceSimulator, transport: str) -> ExchangeConfig:
    return _config("binance", sim.endpoint, transport, reconnect_attempts=0)


@pytest.mark.parametrize("status", [429, 503])
async def test_a_rate_limited_or_failing_upgrade_is_retried(status: int, transport: str) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=0, upgrade_status=status) as sim:
        hub, rec = await _hub(hub_cfg(sim, transport))
        async with hub:
            await hub.connect_exchange("binance", hub_cfg(sim, transport), wait=False)
            await rec.wait_for(lambda: sim.upgrades_refused >= 2, 20, "a second attempt")
            sim.refuse_upgrades(0)  # the venue recovers: the hub connects
            await rec.wait_for(lambda: ConnectionState.CONNECTED in rec.states(), 20, "connected")
            assert ConnectionState.AUTH_FAILED not in rec.states()
        rec.close()


def test_hub_sim_takes_the_fault_from_the_command_line() -> None:
    hub = Path(sys.executable).parent / "hub"
    if not hub.exists():
        pytest.skip("the hub console script is not installed next to this interpreter")
    script = (
        "import asyncio, subprocess, sys\n"
        "from hub_plugin_websocket.transports import TransportSettings, ConnectFailed\n"
        "from hub_plugin_websocket.transports.websockets_transport import WebsocketsTransport\n"
        "p = subprocess.Popen([sys.argv[1], 'sim', 'websocket', '--duration', '20',\n"
        "    '-o', 'upgrade_status=403'], stdout=subprocess.PIPE, text=True)\n"
        "addr = p.stdout.readline().split()[-1]\n"
        "async def main():\n"
        "    s = TransportSettings(url=f'ws://{addr}/ws', ssl=None, max_size=1<<20,\n"
        "        open_timeout=5, use_proxy=False)\n"
        "    try:\n"
        "        await WebsocketsTransport().connect(s)\n"
        "    except ConnectFailed as exc:\n"
        "        print(exc.status)\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "finally:\n"
        "    p.terminate(); p.wait(10)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(hub)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "403", out.stderr


# -- the kit's refusal faults, on every venue -------------------------------------------------
SECOND = {"binance": "ETHUSDT", "coinbase": "ETH-USD", "kraken": "ETH/USD"}


@pytest.mark.parametrize("venue", sorted(VENUES))
async def test_refuse_credentials_and_refuse_symbol(venue: str, transport: str) -> None:
    cls, symbols, _ = VENUES[venue]
    other = SECOND[venue]
    async with cls([*symbols, other], rate=100) as sim:
        await sim.refuse_credentials()
        cfg = _config(venue, sim.endpoint, transport)
        conn = WebSocketFactory().create(cfg, EventProcessor(TypedEventBus()).sink_for(venue))
        with pytest.raises(AuthenticationError, match="HTTP 401"):
            await conn.connect(sim.endpoint)
        await conn.close()
        await sim.refuse_credentials(False)
        await sim.refuse_symbol(other)
        hub, rec = await _hub(cfg)
        async with hub:
            await hub.connect_exchange(venue, cfg, timeout=10)
            with pytest.raises(SubscriptionError):
                await hub.subscribe_market_data(venue, [other])
            await rec.wait_for(
                lambda: any(t.symbol == symbols[0] for t in rec.of(Trade)), 10, "trades go on"
            )
            await sim.refuse_symbol(other, on=False)
            # a new session subscribes it (this one keeps the refusal it was given)
            await hub.disconnect_exchange(venue)
            again = cfg.model_copy(update={"symbols": [other]})
            await hub.connect_exchange(venue, again, timeout=10)
            await rec.wait_for(
                lambda: any(t.symbol == other for t in rec.of(Trade)), 10, "the symbol accepted"
            )
        rec.close()
