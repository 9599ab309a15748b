"""Coinbase and Kraken over TLS, through a real ``ExchangeHub``, once per transport: the
loopback venue serves ``wss://`` with a certificate from a CA made for the test
(``conftest.tls``). Trusting that CA (``ca_file``) connects and delivers exact ticks;
trusting only the system's CAs is refused, with the certificate named in the reason."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from hub_core import BookSnapshot, ConnectionState, Trade
from hub_plugin_websocket.simulators import CoinbaseSimulator, KrakenSimulator, WebSocketVenue
from tests.plugins.websocket.conftest import running_venue

pytestmark = pytest.mark.anyio

VENUES: dict[str, tuple[type[WebSocketVenue], str, list[str]]] = {
    "coinbase": (CoinbaseSimulator, "BTC-USD", ["matches", "level2"]),
    "kraken": (KrakenSimulator, "BTC/USD", ["trade", "book"]),
}


def venue(name: str, server_ctx: ssl.SSLContext, rate: float) -> WebSocketVenue:
    cls, symbol, _ = VENUES[name]
    return cls([symbol], rate, seed=61, ssl_context=server_ctx)


@pytest.mark.parametrize("name", list(VENUES))
async def test_tls_with_a_custom_ca(
    name: str, transport: str, tls: tuple[ssl.SSLContext, Path]
) -> None:
    server_ctx, ca_file = tls
    _, symbol, channels = VENUES[name]
    async with venue(name, server_ctx, rate=150) as sim:
        assert sim.endpoint.startswith("wss://")
        async with running_venue(
            name, sim.endpoint, transport, [symbol], channels, options={"ca_file": str(ca_file)}
        ) as (hub, rec):
            await rec.wait_for(lambda: len(rec.of(Trade)) >= 10, 10, "trades over TLS")
            await rec.wait_for(lambda: bool(rec.of(BookSnapshot)), 10, "a book over TLS")
            got = [(t.price, t.size, t.side) for t in rec.of(Trade)]
            sent = sim.sent_trades(symbol)
            # a contiguous run of what was sent (the same trade may recur: match the run)
            assert any(sent[i : i + len(got)] == got for i, t in enumerate(sent) if t == got[0]), (
                "exactly the trades sent, in order"
            )
            assert hub.event_processor().get_stats().malformed_frames == 0


@pytest.mark.parametrize("name", list(VENUES))
async def test_tls_refuses_an_unknown_ca(
    name: str, transport: str, tls: tuple[ssl.SSLContext, Path]
) -> None:
    server_ctx, _ = tls
    _, symbol, channels = VENUES[name]
    async with (
        venue(name, server_ctx, rate=10) as sim,
        # no ca_file: the system's CAs only, which never signed the venue's certificate
        running_venue(name, sim.endpoint, transport, [symbol], channels, wait=False) as (hub, rec),
    ):
        await rec.wait_for(
            lambda: ConnectionState.RECONNECTING in rec.states(), 10, "a failed attempt"
        )
        reason = hub.connections()[name].reason
        assert "certificate" in reason.lower() and "ca_file" in reason, reason
        assert ConnectionState.CONNECTED not in rec.states()
        assert sim.connections_accepted == 0, "no WebSocket session without a trusted peer"
        assert not rec.of(Trade)
