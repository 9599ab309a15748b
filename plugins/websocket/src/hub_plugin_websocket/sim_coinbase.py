"""A Coinbase Exchange-style market-data venue on loopback (``--dialect coinbase``).

Speaks the Exchange feed's protocol as the ``coinbase`` dialect expects it:
``{"type":"subscribe","product_ids":[...],"channels":[...]}`` answered by one
``subscriptions`` message (the whole current list, no request id) or an
``error``; a client that has not subscribed within ``subscribe_deadline_s`` is
sent an ``error`` and disconnected, as Coinbase does after 5 seconds.

Channels: ``ticker`` (on every change of the best bid/ask), ``matches`` (a
``last_match`` on subscribing, then one ``match`` per trade with a contiguous
``trade_id`` per product; ``side`` is the maker's), ``level2`` (a full
``snapshot`` on subscribing, then one ``l2update`` per level change) and
``heartbeat`` (every ``heartbeat_interval_s``, with ``last_trade_id``).
``sequence`` counts every event of the product, so each channel sees holes
in it, as on the real feed. The venue accepts ``level2`` without
authentication (the production feed wants it signed).

Faults: ``skip_sequence()`` loses the next ``match`` of every product (a
``trade_id`` hole), plus the base's drop, stall, malformed JSON and raw frames.

Replay (``replay=``): every ``ticker``, ``match``/``last_match``, ``snapshot``/
``l2update`` and ``heartbeat`` message of the recording goes to the sessions
subscribed to that channel and product; nothing is made up on subscribing (no
snapshot, ``last_match`` or heartbeat of the venue's own), so a recording should
start with the subscription it was made with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Final

import anyio
import anyio.abc

from hub_plugin_websocket.sim_base import (
    E8,
    LoopbackVenue,
    Market,
    Stream,
    VenueClient,
    fmt,
    iso_time,
)

__all__ = ["COINBASE_SYMBOLS", "CoinbaseSimulator"]

COINBASE_SYMBOLS: Final = ("BTC-USD", "ETH-USD")
_CHANNELS: Final = frozenset({"ticker", "matches", "level2", "heartbeat"})
_PRICE_DECIMALS: Final = 2
_SIZE_DECIMALS: Final = 8
_PRICES: Final = {"BTC-USD": 60_000 * E8, "ETH-USD": 3_000 * E8, "SOL-USD": 150 * E8}
_REPLAYED: Final = {
    "ticker": "ticker",
    "match": "matches",
    "last_match": "matches",
    "snapshot": "level2",
    "l2update": "level2",
    "heartbeat": "heartbeat",
}
"""A recorded message's ``type`` -> the channel it belongs to."""


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


class CoinbaseSimulator(LoopbackVenue):
    """``async with CoinbaseSimulator(["BTC-USD"], rate=200) as sim:`` then connect the
    ``coinbase`` dialect to ``sim.endpoint`` (``ws://127.0.0.1:PORT/``)."""

    venue = "coinbase"
    path = "/"

    def __init__(
        self,
        symbols: Sequence[str] = COINBASE_SYMBOLS,
        rate: float = 50.0,
        *,
        subscribe_deadline_s: float = 5.0,
        heartbeat_interval_s: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(symbols, rate, **kwargs)
        self.subscribe_deadline_s = subscribe_deadline_s
        self.heartbeat_interval_s = heartbeat_interval_s

    def _instrument(self, symbol: str) -> tuple[int, int, int]:
        return (_PRICES.get(symbol, 100 * E8), E8 // 100, 10_000)

    def _price(self, value: int) -> str:
        return fmt(value, _PRICE_DECIMALS)

    def _size(self, value: int) -> str:
        return fmt(value, _SIZE_DECIMALS)

    # -- sessions -------------------------------------------------------------------------------
    def _on_open(self, client: VenueClient, tg: anyio.abc.TaskGroup) -> None:
        tg.start_soon(self._deadline, client)
        if not self.replaying:  # a replay sends the recorded heartbeats (their trade ids)
            tg.start_soon(self._heartbeats, client)

    async def _deadline(self, client: VenueClient) -> None:
        with anyio.move_on_after(self.subscribe_deadline_s):
            await client.subscribed.wait()
            return
        client.push(
            _dumps(
                {
                    "type": "error",
                    "message": "Failed to subscribe",
                    "reason": f"no subscribe within {self.subscribe_deadline_s:g} seconds",
                }
            )
        )
        client.wake.set()
        await anyio.sleep(0.05)  # let the writer send the error first
        await client.ws.close(1008, "subscribe deadline")

    async def _heartbeats(self, client: VenueClient) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval_s)
            now = iso_time(time.time_ns())
            for ch, product in sorted(client.streams):
                if ch != "heartbeat":
                    continue
                m = self._markets[product]
                client.push(
                    _dumps(
                        {
                            "type": "heartbeat",
                            "sequence": m.sequence,
                            "last_trade_id": m.trade_id,
                            "product_id": product,
                            "time": now,
                        }
                    )
                )
            client.wake.set()

    def _on_text(self, client: VenueClient, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            client.push(_dumps({"type": "error", "message": "Malformed JSON"}))
            return
        if not isinstance(req, dict):
            client.push(_dumps({"type": "error", "message": "Malformed JSON"}))
            return
        self.requests_received.append(req)
        op = req.get("type")
        products = req.get("product_ids", [])
        raw_channels = req.get("channels", [])
        channels = [c if isinstance(c, str) else c.get("name", "") for c in raw_channels]
        if op not in ("subscribe", "unsubscribe"):
            client.push(_dumps({"type": "error", "message": f"Failed to {op}", "reason": ""}))
            return
        for ch in channels:
            if ch not in _CHANNELS:
                client.push(
                    _dumps(
                        {
                            "type": "error",
                            "message": f"Failed to {op}",
                            "reason": f"{ch} is not a valid channel",
                        }
                    )
                )
                return
        for p in products:
            if p not in self._markets or p in self.refuse_symbols:
                client.push(
                    _dumps(
                        {
                            "type": "error",
                            "message": f"Failed to {op}",
                            "reason": f"{p} is not a valid product",
                        }
                    )
                )
                return
        pairs = [(ch, p) for p in products for ch in channels]
        if op == "subscribe":
            client.subscribed.set()
            fresh = [pair for pair in pairs if pair not in client.streams]
            client.streams.update(pairs)
            client.push(self._subscriptions(client))
            if not self.replaying:  # a replay has the recorded snapshot and last_match
                for ch, p in fresh:
                    self._on_subscribed(client, ch, p)
        else:
            client.streams.difference_update(pairs)
            client.push(self._subscriptions(client))

    def _replay_stream(self, message: Any) -> Stream | None:
        if not isinstance(message, dict):
            return None
        channel = _REPLAYED.get(message.get("type", ""))
        product = message.get("product_id")
        if channel is None or not isinstance(product, str):
            return None
        return (channel, product)

    def _subscriptions(self, client: VenueClient) -> str:
        by_channel: dict[str, list[str]] = {}
        for ch, p in sorted(client.streams):
            by_channel.setdefault(ch, []).append(p)
        channels = [{"name": ch, "product_ids": ps} for ch, ps in by_channel.items()]
        return _dumps({"type": "subscriptions", "channels": channels})

    def _on_subscribed(self, client: VenueClient, channel: str, product: str) -> None:
        m = self._markets[product]
        if channel == "level2":
            bids, asks = m.levels()
            client.push(
                _dumps(
                    {
                        "type": "snapshot",
                        "product_id": product,
                        "bids": [[self._price(p), self._size(q)] for p, q in bids],
                        "asks": [[self._price(p), self._size(q)] for p, q in asks],
                    }
                )
            )
        elif channel == "matches":
            last = m.trades[-1] if m.trades else None
            price = last[0] // 10 if last else m.best_bid()
            size = last[1] // 10 if last else m.lot
            client.push(
                _dumps(
                    {
                        "type": "last_match",
                        "trade_id": m.trade_id,
                        "sequence": m.sequence,
                        "time": iso_time(time.time_ns()),
                        "product_id": product,
                        "size": self._size(size),
                        "price": self._price(price),
                        "side": "sell",
                    }
                )
            )

    # -- market events --------------------------------------------------------------------------
    def _on_trade(self, m: Market, ts: int, price: int, qty: int, buy: bool) -> None:
        key = ("matches", m.symbol)
        text = _dumps(
            {
                "type": "match",
                "trade_id": m.trade_id,
                "sequence": m.sequence,
                "maker_order_id": f"m-{m.trade_id}",
                "taker_order_id": f"t-{m.trade_id}",
                "time": iso_time(ts),
                "product_id": m.symbol,
                "size": self._size(qty),
                "price": self._price(price),
                # the maker's side: an aggressive buyer lifted a resting sell
                "side": "sell" if buy else "buy",
            }
        )
        for c in self._clients:
            if key in c.streams:
                if m.symbol in c.skip:
                    c.skip.discard(m.symbol)  # lost on the way: a trade_id hole
                    continue
                c.push(text)

    def _on_level(self, m: Market, side: str, price: int, size: int) -> None:
        key = ("level2", m.symbol)
        text = None
        for c in self._clients:
            if key in c.streams:
                if text is None:
                    text = _dumps(
                        {
                            "type": "l2update",
                            "product_id": m.symbol,
                            "changes": [
                                [
                                    "buy" if side == "B" else "sell",
                                    self._price(price),
                                    self._size(size),
                                ]
                            ],
                            "time": iso_time(time.time_ns()),
                        }
                    )
                c.push(text)

    def _on_top(self, m: Market, ts: int) -> None:
        key = ("ticker", m.symbol)
        bid, bid_size, ask, ask_size = m.top()
        last = m.trades[-1] if m.trades else (bid * 10, m.lot * 10, "B")
        text = _dumps(
            {
                "type": "ticker",
                "sequence": m.sequence,
                "product_id": m.symbol,
                "price": self._price(last[0] // 10),
                "open_24h": self._price(bid),
                "volume_24h": "1000.00000000",
                "best_bid": self._price(bid),
                "best_bid_size": self._size(bid_size),
                "best_ask": self._price(ask),
                "best_ask_size": self._size(ask_size),
                "side": "buy" if last[2] == "B" else "sell",
                "time": iso_time(ts),
                "trade_id": m.trade_id,
                "last_size": self._size(last[1] // 10),
            }
        )
        for c in self._clients:
            if key in c.streams:
                c.push(text)
