"""The connector's handling of ``Resubscribe``: a book resync over the same WebSocket.

A scripted loopback server speaking just enough of Coinbase's protocol answers every
request with a ``subscriptions`` message (no ids: the session matches replies first in,
first out) and sends a fresh ``level2`` snapshot on each ``level2`` subscribe. A trade-id
hole makes the dialect return ``Resubscribe``: the connection must send the
unsubscribe and the subscribe, in that order, on the same connection, keep the session,
and a subscribe asked for right after still gets its own acknowledgement.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve

from hub_core import BookSnapshot, ExchangeConfig, Gap, TypedEventBus
from hub_core.processor import EventProcessor
from hub_core.testing import EventRecorder
from hub_plugin_websocket import Resubscribe, ServerShutdown, WebSocketConnection, WebSocketFactory
from hub_plugin_websocket.dialects import coinbase

pytestmark = pytest.mark.anyio


def _match(trade_id: int, seq: int) -> str:
    return json.dumps(
        {
            "type": "match",
            "trade_id": trade_id,
            "sequence": seq,
            "time": "2024-01-02T03:04:05.000001Z",
            "product_id": "BTC-USD",
            "size": "0.5",
            "price": "100.25",
            "side": "sell",
        }
    )


class ScriptedVenue:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self.snapshots = 0
        self.clients: list[ServerConnection] = []

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.clients.append(ws)
        async for text in ws:
            req = json.loads(text)
            self.received.append(req)
            await ws.send(json.dumps({"type": "subscriptions", "channels": []}))
            if req["type"] == "subscribe" and "level2" in req["channels"]:
                self.snapshots += 1
                price = f"{100 + self.snapshots}.00"
                await ws.send(
                    json.dumps(
                        {
                            "type": "snapshot",
                            "product_id": req["product_ids"][0],
                            "bids": [[price, "1.0"]],
                            "asks": [["200.00", "2.0"]],
                        }
                    )
                )


def test_resubscribe_lives_in_dialect_and_is_still_importable_from_coinbase() -> None:
    assert coinbase.Resubscribe is Resubscribe
    # a connector that does not know it still ends the session (correct, only heavier)
    assert issubclass(Resubscribe, ServerShutdown)


async def test_resubscribe_is_sent_in_order_on_the_same_connection() -> None:
    venue = ScriptedVenue()
    async with serve(venue.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        endpoint = f"ws://127.0.0.1:{port}/"
        cfg = ExchangeConfig.websocket(
            "coinbase",
            endpoint,
            options={"channels": ["matches", "level2"], "subscribe_timeout_s": 3.0},
        )
        bus = TypedEventBus()
        rec = EventRecorder(bus)
        conn = WebSocketFactory().create(cfg, EventProcessor(bus).sink_for("coinbase"))
        assert isinstance(conn, WebSocketConnection)
        await conn.connect(endpoint)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            await conn.subscribe(["BTC-USD"])
            await rec.wait_for(lambda: len(rec.of(BookSnapshot)) == 1, 5, "the first book")
            (ws,) = venue.clients
            await ws.send(_match(10, 100))
            await ws.send(_match(13, 105))  # trade ids 11..12 lost: Gap and a book resync
            await rec.wait_for(lambda: len(rec.of(BookSnapshot)) == 2, 5, "the rebuilt book")
            # a subscribe right behind the resync gets its own reply, not the resync's
            await conn.subscribe(["ETH-USD"])
            assert venue.connections == 1, "the resync must not reconnect"
            assert conn.health().connected and conn.resubscribes == 1
            ops = [(r["type"], r["product_ids"], r["channels"]) for r in venue.received]
            assert ops == [
                ("subscribe", ["BTC-USD"], ["matches", "level2"]),
                ("unsubscribe", ["BTC-USD"], ["level2"]),
                ("subscribe", ["BTC-USD"], ["level2"]),
                ("subscribe", ["ETH-USD"], ["matches", "level2"]),
            ]
            (gap,) = rec.of(Gap)
            assert "sequence" in gap.reason and (gap.start_seq, gap.end_seq) == (11, 12)
            fresh = rec.of(BookSnapshot)[1]
            assert list(fresh.bids) == [(102 * 10**9, 10**9)], "only the new snapshot's levels"
            await conn.close()
        rec.close()
