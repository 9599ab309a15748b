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
``trade_id`` hole), plus the base's drop, stall, malformed JSON, raw frames and refusals.

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

from hub_core.simulation import (
    Book,
    ClientLink,
    Instrument,
    LevelChange,
    MarketTrade,
    MarketUpdate,
)
from hub_plugin_websocket.simulators.base import (
    Stream,
    WebSocketClient,
    WebSocketLink,
    WebSocketVenue,
    fmt,
    iso_time,
)

__all__ = ["COINBASE_SYMBOLS", "CoinbaseSimulator"]

COINBASE_SYMBOLS: Final = ("BTC-USD", "ETH-USD")
_CHANNELS: Final = frozenset({"ticker", "matches", "level2", "heartbeat"})
_PRICE_DECIMALS: Final = 2
_SIZE_DECIMALS: Final = 8
_PRICES: Final = {"BTC-USD": 60_000, "ETH-USD": 3_000, "SOL-USD": 150}
_TRADE_IDS: Final = 1_000
"""A product's first trade id is one past this."""
_SEQUENCES: Final = 10_000
"""A product's ``sequence`` starts past this."""
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


def _price(value: int) -> str:
    return fmt(value, _PRICE_DECIMALS)


def _size(value: int) -> str:
    return fmt(value, _SIZE_DECIMALS)


class _Client(WebSocketClient[Stream]):
    """A Coinbase session."""


class CoinbaseSimulator(WebSocketVenue[_Client, Stream]):
    """``async with CoinbaseSimulator(["BTC-USD"], rate=200) as sim:`` then connect the
    ``coinbase`` dialect to ``sim.endpoint`` (``ws://127.0.0.1:PORT/``)."""

    venue = "coinbase"
    name = "coinbase"
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
        self._trade_sequence = 0
        # a replay sends the recorded heartbeats (their trade ids), not its own
        self.heartbeat_interval_s = None if self.replaying else heartbeat_interval_s

    def _instrument(self, symbol: str, depth: int) -> Instrument:
        first = _PRICES.get(symbol, 100) * 1_000_000_000
        return Instrument(
            symbol,
            first,
            10_000_000,  # 0.01
            lot=100_000,  # 0.0001
            depth=depth,
            level_lots=(1, 5_000),
            trade_lots=(1, 50),
        )

    set_level = WebSocketVenue.set_level_e8  # levels in 1e-8 units, as the wire prints them

    @staticmethod
    def _trade_id(book: Book) -> int:
        return _TRADE_IDS + book.trade_count

    # -- sessions -------------------------------------------------------------------------------
    def new_client(self, link: ClientLink) -> _Client:
        assert isinstance(link, WebSocketLink)
        return _Client(self, link)

    def on_connect(self, client: _Client) -> None:
        client.start_soon(self._deadline, client)

    async def _deadline(self, client: _Client) -> None:
        with anyio.move_on_after(self.subscribe_deadline_s):
            await client.subscribed.wait()
            return
        client.send(
            _dumps(
                {
                    "type": "error",
                    "message": "Failed to subscribe",
                    "reason": f"no subscribe within {self.subscribe_deadline_s:g} seconds",
                }
            )
        )
        with anyio.move_on_after(1):
            await client.drained()  # the error first
        await client.ws.close(1008, "subscribe deadline")

    def heartbeat(self, client: _Client) -> None:
        now = iso_time(time.time_ns())
        for ch, product in sorted(client.subscriptions):
            if ch != "heartbeat":
                continue
            book = self.market.book(product)
            client.send(
                _dumps(
                    {
                        "type": "heartbeat",
                        "sequence": _SEQUENCES + book.sequence,
                        "last_trade_id": self._trade_id(book),
                        "product_id": product,
                        "time": now,
                    }
                )
            )

    def on_text(self, client: _Client, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            client.send(_dumps({"type": "error", "message": "Malformed JSON"}))
            return
        if not isinstance(req, dict):
            client.send(_dumps({"type": "error", "message": "Malformed JSON"}))
            return
        self.requests_received.append(req)
        op = req.get("type")
        products = req.get("product_ids", [])
        raw_channels = req.get("channels", [])
        channels = [c if isinstance(c, str) else c.get("name", "") for c in raw_channels]
        if op not in ("subscribe", "unsubscribe"):
            client.send(_dumps({"type": "error", "message": f"Failed to {op}", "reason": ""}))
            return
        for ch in channels:
            if ch not in _CHANNELS:
                client.send(
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
            if p not in self.market or self.symbol_refused(p):
                client.send(
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
            fresh = [pair for pair in pairs if pair not in client.subscriptions]
            client.subscriptions.update(pairs)
            client.send(self._subscriptions(client))
            if not self.replaying:  # a replay has the recorded snapshot and last_match
                for ch, p in fresh:
                    self._on_subscribed(client, ch, p)
        else:
            client.subscriptions.difference_update(pairs)
            client.send(self._subscriptions(client))

    def _replay_stream(self, message: Any) -> Stream | None:
        if not isinstance(message, dict):
            return None
        channel = _REPLAYED.get(message.get("type", ""))
        product = message.get("product_id")
        if channel is None or not isinstance(product, str):
            return None
        return (channel, product)

    def _subscriptions(self, client: _Client) -> str:
        by_channel: dict[str, list[str]] = {}
        for ch, p in sorted(client.subscriptions):
            by_channel.setdefault(ch, []).append(p)
        channels = [{"name": ch, "product_ids": ps} for ch, ps in by_channel.items()]
        return _dumps({"type": "subscriptions", "channels": channels})

    def _on_subscribed(self, client: _Client, channel: str, product: str) -> None:
        book = self.market.book(product)
        if channel == "level2":
            bids, asks = book.levels()
            client.send(
                _dumps(
                    {
                        "type": "snapshot",
                        "product_id": product,
                        "bids": [[_price(p), _size(q)] for p, q in bids],
                        "asks": [[_price(p), _size(q)] for p, q in asks],
                    }
                )
            )
        elif channel == "matches":
            last = book.last_trade
            price = last[0] if last else book.best_bid
            size = last[1] if last else book.instrument.lot
            client.send(
                _dumps(
                    {
                        "type": "last_match",
                        "trade_id": self._trade_id(book),
                        "sequence": _SEQUENCES + book.sequence,
                        "time": iso_time(time.time_ns()),
                        "product_id": product,
                        "size": _size(size),
                        "price": _price(price),
                        "side": "sell",
                    }
                )
            )

    # -- market events --------------------------------------------------------------------------
    def on_market(self, update: MarketUpdate, ts: int) -> None:
        # ``sequence`` counts every event of the product: the trade came before its changes
        book = self.market.book(update.symbol)
        self._trade_sequence = _SEQUENCES + book.sequence - len(update.changes)
        super().on_market(update, ts)

    def _on_trade(self, book: Book, ts: int, trade: MarketTrade) -> None:
        key = ("matches", book.symbol)
        buy = trade.side == "B"
        trade_id = _TRADE_IDS + trade.trade_id
        text = _dumps(
            {
                "type": "match",
                "trade_id": trade_id,
                "sequence": self._trade_sequence,
                "maker_order_id": f"m-{trade_id}",
                "taker_order_id": f"t-{trade_id}",
                "time": iso_time(ts),
                "product_id": book.symbol,
                "size": _size(trade.size),
                "price": _price(trade.price),
                # the maker's side: an aggressive buyer lifted a resting sell
                "side": "sell" if buy else "buy",
            }
        )
        for c in self.connected():
            if key in c.subscriptions:
                if book.symbol in c.skip:
                    c.skip.discard(book.symbol)  # lost on the way: a trade_id hole
                    continue
                c.send(text)

    def _on_level(self, book: Book, change: LevelChange) -> None:
        key = ("level2", book.symbol)
        text = None
        for c in self.connected():
            if key in c.subscriptions:
                if text is None:
                    side = "buy" if change.side == "B" else "sell"
                    text = _dumps(
                        {
                            "type": "l2update",
                            "product_id": book.symbol,
                            "changes": [[side, _price(change.price), _size(change.size)]],
                            "time": iso_time(time.time_ns()),
                        }
                    )
                c.send(text)

    def _on_top(self, book: Book, ts: int) -> None:
        key = ("ticker", book.symbol)
        bid, bid_size, ask, ask_size = book.top()
        last = book.last_trade or (bid, book.instrument.lot, "B")
        text = _dumps(
            {
                "type": "ticker",
                "sequence": _SEQUENCES + book.sequence,
                "product_id": book.symbol,
                "price": _price(last[0]),
                "open_24h": _price(bid),
                "volume_24h": "1000.00000000",
                "best_bid": _price(bid),
                "best_bid_size": _size(bid_size),
                "best_ask": _price(ask),
                "best_ask_size": _size(ask_size),
                "side": "buy" if last[2] == "B" else "sell",
                "time": iso_time(ts),
                "trade_id": self._trade_id(book),
                "last_size": _size(last[1]),
            }
        )
        for c in self.connected():
            if key in c.subscriptions:
                c.send(text)
