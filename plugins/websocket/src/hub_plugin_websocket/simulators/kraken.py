"""A Kraken WebSocket v2-style venue on loopback (``--dialect kraken``).

Speaks v2 as the ``kraken`` dialect expects it: a ``status`` message on
connecting; ``{"method":"subscribe","params":{"channel":..,"symbol":[..]},"req_id":N}``
answered by one reply per symbol carrying the request's ``req_id``
(``success:false`` with an ``error`` for an unknown pair); ``unsubscribe``
likewise; ``ping`` -> ``pong``; a ``heartbeat`` every ``heartbeat_interval_s``
while anything is subscribed.

Prices and quantities are JSON numbers written with the pair's fixed
precision (price 1 decimal, qty 8), as Kraken prints them. Channels:
``ticker`` (a snapshot on subscribing, then an update on every change of the
best bid/ask), ``trade`` (one update per trade; ``side`` is the taker's;
``"snapshot": false`` honoured) and ``book`` at the depth asked for (10 by
default): a snapshot, then per market step one update with every level of the
client's top-``depth`` view that changed. A level pushed out of that view by a
better one gets no message (the client truncates to its depth, as on Kraken);
a level removed from the book gets qty 0. Each book message carries the CRC32
checksum of the top 10 asks (low to high) and bids (high to low), every price
and qty text with ``.`` removed and leading zeros stripped (computed here
independently of the dialect's code).

Faults: ``skip_sequence()`` sends the next book update of every subscribed
book with a wrong checksum (Kraken's books have no sequence numbers: the
checksum is how a loss shows), plus the base's drop, stall, malformed JSON, raw
frames and refusals.

Replay (``replay=``): every ``ticker``, ``trade`` and ``book`` message of the
recording goes to the sessions subscribed to that channel and (first) symbol;
nothing is made up on subscribing (no book, ticker or trade snapshot of the
venue's own), so a recording should start with the subscriptions it was made
with. Heartbeats and ``pong`` stay the venue's own.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from typing import Any, Final

from hub_core.simulation import Book, ClientLink, Instrument, MarketTrade
from hub_plugin_websocket.simulators.base import (
    Stream,
    WebSocketClient,
    WebSocketLink,
    WebSocketVenue,
    fmt,
    iso_time,
)

__all__ = ["KRAKEN_SYMBOLS", "KrakenSimulator", "kraken_checksum"]

KRAKEN_SYMBOLS: Final = ("BTC/USD", "ETH/USD")
_PRICE_DECIMALS: Final = 1
_QTY_DECIMALS: Final = 8
_DEPTHS: Final = frozenset({10, 25, 100, 500, 1000})
_REPLAYED: Final = frozenset({"ticker", "trade", "book"})
"""The channels whose recorded messages a replay sends."""
_PRICES: Final = {"BTC/USD": 60_000, "ETH/USD": 3_000, "SOL/USD": 150}
_TRADE_IDS: Final = 1_000
"""A pair's first trade id is one past this."""


def kraken_checksum(asks: Sequence[tuple[str, str]], bids: Sequence[tuple[str, str]]) -> int:
    """CRC32 of the top 10 asks (best first) then the top 10 bids (best first), each
    level's price then qty text without ``.`` and without leading zeros."""
    parts = [
        (p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0"))
        for p, q in [*asks[:10], *bids[:10]]
    ]
    return zlib.crc32("".join(parts).encode())


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


# numbers are JSON numbers: the text goes into the message unquoted
def _price(value: int) -> str:
    return fmt(value, _PRICE_DECIMALS)


def _qty(value: int) -> str:
    return fmt(value, _QTY_DECIMALS)


class _BookView:
    """What one client's book subscription last saw (its top ``depth``)."""

    __slots__ = ("asks", "bids", "depth", "sequence")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.sequence = -1


class _Client(WebSocketClient[Stream]):
    """A Kraken session."""


class KrakenSimulator(WebSocketVenue[_Client, Stream]):
    """``async with KrakenSimulator(["BTC/USD"], rate=200) as sim:`` then connect the
    ``kraken`` dialect to ``sim.endpoint`` (``ws://127.0.0.1:PORT/v2``)."""

    venue = "kraken"
    name = "kraken"
    path = "/v2"

    def __init__(
        self,
        symbols: Sequence[str] = KRAKEN_SYMBOLS,
        rate: float = 50.0,
        *,
        heartbeat_interval_s: float = 1.0,
        refuse_resyncs: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(symbols, rate, **kwargs)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.refuse_resyncs = refuse_resyncs
        """Book resubscriptions (a ``book`` subscribe of a symbol whose book this session
        unsubscribed before) still to refuse; -1: refuse them all."""
        self.resyncs_refused = 0
        """Book resubscriptions refused so far (``refuse_resyncs``)."""
        self.checksums_corrupted = 0
        """Book updates sent with a wrong checksum (``skip_sequence``)."""

    def _instrument(self, symbol: str, depth: int) -> Instrument:
        first = _PRICES.get(symbol, 100) * 1_000_000_000
        return Instrument(
            symbol,
            first,
            100_000_000,  # 0.1
            lot=100_000,  # 0.0001
            depth=depth,
            level_lots=(1, 5_000),
            trade_lots=(1, 50),
        )

    set_level = WebSocketVenue.set_level_e8  # levels in 1e-8 units, as the wire prints them

    # -- sessions -------------------------------------------------------------------------------
    def new_client(self, link: ClientLink) -> _Client:
        assert isinstance(link, WebSocketLink)
        return _Client(self, link)

    def on_connect(self, client: _Client) -> None:
        client.send(
            _dumps(
                {
                    "channel": "status",
                    "type": "update",
                    "data": [
                        {
                            "version": "2.0.0",
                            "system": "online",
                            "api_version": "v2",
                            "connection_id": self.connections_accepted,
                        }
                    ],
                }
            )
        )

    def heartbeat(self, client: _Client) -> None:
        if client.subscriptions:
            client.send('{"channel":"heartbeat"}')

    def on_text(self, client: _Client, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            client.send(_dumps({"error": "Malformed request", "success": False}))
            return
        if not isinstance(req, dict):
            client.send(_dumps({"error": "Malformed request", "success": False}))
            return
        self.requests_received.append(req)
        method = req.get("method")
        req_id = req.get("req_id")
        now = iso_time(time.time_ns())
        if method == "ping":
            client.send(
                _dumps({"method": "pong", "req_id": req_id, "time_in": now, "time_out": now})
            )
            return
        params = req.get("params") or {}
        channel = params.get("channel")
        symbols = params.get("symbol") or []
        if method not in ("subscribe", "unsubscribe") or channel not in ("ticker", "trade", "book"):
            client.send(
                _dumps(
                    {
                        "error": f"Unsupported request {method!r} {channel!r}",
                        "method": method,
                        "req_id": req_id,
                        "success": False,
                        "time_in": now,
                        "time_out": now,
                    }
                )
            )
            return
        depth = int(params.get("depth", 10)) if channel == "book" else 0
        for sym in symbols:
            resync = channel == "book" and f"unsubscribed:{sym}" in client.state
            if method == "subscribe" and resync and self.refuse_resyncs != 0:
                if self.refuse_resyncs > 0:
                    self.refuse_resyncs -= 1
                self.resyncs_refused += 1
                client.send(
                    _dumps(
                        {
                            "error": "Subscription rate limit exceeded",
                            "method": method,
                            "req_id": req_id,
                            "success": False,
                            "symbol": sym,
                            "time_in": now,
                            "time_out": now,
                        }
                    )
                )
                continue
            if (
                sym not in self.market
                or self.symbol_refused(sym)
                or (channel == "book" and depth not in _DEPTHS)
            ):
                why = (
                    f"Currency pair not supported {sym}"
                    if channel != "book" or depth in _DEPTHS
                    else f"Invalid depth {depth}"
                )
                client.send(
                    _dumps(
                        {
                            "error": why,
                            "method": method,
                            "req_id": req_id,
                            "success": False,
                            "symbol": sym,
                            "time_in": now,
                            "time_out": now,
                        }
                    )
                )
                continue
            result: dict[str, Any] = {"channel": channel, "symbol": sym}
            if channel == "book":
                result["depth"] = depth
                result["snapshot"] = True
            key = (channel, sym)
            if method == "subscribe":
                client.subscriptions.add(key)
                client.subscribed.set()
            else:
                client.subscriptions.discard(key)
                client.state.pop(f"book:{sym}", None)
                if channel == "book":
                    client.state[f"unsubscribed:{sym}"] = True
            client.send(
                _dumps(
                    {
                        "method": method,
                        "result": result,
                        "success": True,
                        "time_in": now,
                        "time_out": now,
                        "req_id": req_id,
                    }
                )
            )
            if method == "subscribe" and not self.replaying:  # a replay has recorded ones
                self._on_subscribed(client, channel, sym, depth, params)

    def _replay_stream(self, message: Any) -> Stream | None:
        if not isinstance(message, dict) or message.get("channel") not in _REPLAYED:
            return None
        data = message.get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            return None  # e.g. an empty trade snapshot: nothing to deliver
        symbol = data[0].get("symbol")
        return (message["channel"], symbol) if isinstance(symbol, str) else None

    def _on_subscribed(
        self, client: _Client, channel: str, sym: str, depth: int, params: dict[str, Any]
    ) -> None:
        book = self.market.book(sym)
        if channel == "book":
            view = _BookView(depth)
            client.state[f"book:{sym}"] = view
            bids, asks = book.levels(depth)
            view.bids, view.asks, view.sequence = dict(bids), dict(asks), book.sequence
            client.send(self._book_message("snapshot", book, view, 0, [], []))
        elif channel == "ticker":
            client.send(self._ticker_message("snapshot", book))
        elif channel == "trade" and params.get("snapshot", True) is not False:
            trades = list(book.trades)[-50:]
            last_id = _TRADE_IDS + book.trade_count
            data = ",".join(
                f'{{"symbol":"{sym}","side":"{"buy" if s == "B" else "sell"}",'
                f'"price":{_price(p)},"qty":{_qty(q)},'
                f'"ord_type":"market","trade_id":{last_id - len(trades) + i + 1},'
                f'"timestamp":"{iso_time(time.time_ns())}"}}'
                for i, (p, q, s) in enumerate(trades)
            )
            client.send(f'{{"channel":"trade","type":"snapshot","data":[{data}]}}')

    # -- messages -------------------------------------------------------------------------------
    @staticmethod
    def _levels_text(levels: Sequence[tuple[int, int]]) -> list[tuple[str, str]]:
        return [(_price(p), _qty(q)) for p, q in levels]

    def _book_message(
        self,
        kind: str,
        book: Book,
        view: _BookView,
        ts: int,
        bids: Sequence[tuple[int, int]],
        asks: Sequence[tuple[int, int]],
        *,
        corrupt: bool = False,
    ) -> str:
        if kind == "snapshot":
            bids = sorted(view.bids.items(), reverse=True)
            asks = sorted(view.asks.items())
        top_bids = self._levels_text(sorted(view.bids.items(), reverse=True)[:10])
        top_asks = self._levels_text(sorted(view.asks.items())[:10])
        checksum = kraken_checksum(top_asks, top_bids)
        if corrupt:
            checksum ^= 0x5A5A5A5A
        b = ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in self._levels_text(bids))
        a = ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in self._levels_text(asks))
        stamp = f',"timestamp":"{iso_time(ts)}"' if ts else ""
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{book.symbol}",'
            f'"bids":[{b}],"asks":[{a}],"checksum":{checksum}{stamp}}}]}}'
        )

    @staticmethod
    def _ticker_message(kind: str, book: Book) -> str:
        bid, bid_qty, ask, ask_qty = book.top()
        last = book.last_trade[0] if book.last_trade else bid
        return (
            f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{book.symbol}",'
            f'"bid":{_price(bid)},"bid_qty":{_qty(bid_qty)},'
            f'"ask":{_price(ask)},"ask_qty":{_qty(ask_qty)},'
            f'"last":{_price(last)},"volume":1000.00000000,"vwap":{_price(bid)},'
            f'"low":{_price(bid)},"high":{_price(ask)},"change":0.0,'
            f'"change_pct":0.00}}]}}'
        )

    # -- market events --------------------------------------------------------------------------
    def _on_trade(self, book: Book, ts: int, trade: MarketTrade) -> None:
        key = ("trade", book.symbol)
        text = (
            f'{{"channel":"trade","type":"update","data":[{{"symbol":"{book.symbol}",'
            f'"side":"{"buy" if trade.side == "B" else "sell"}","price":{_price(trade.price)},'
            f'"qty":{_qty(trade.size)},"ord_type":"market",'
            f'"trade_id":{_TRADE_IDS + trade.trade_id},"timestamp":"{iso_time(ts)}"}}]}}'
        )
        for c in self.connected():
            if key in c.subscriptions:
                c.send(text)

    def _on_top(self, book: Book, ts: int) -> None:
        key = ("ticker", book.symbol)
        text = self._ticker_message("update", book)
        for c in self.connected():
            if key in c.subscriptions:
                c.send(text)

    def _on_tick(self, client: _Client, ts: int) -> None:
        """One book update per subscribed book whose client view changed this step."""
        for ch, sym in client.subscriptions:
            if ch != "book":
                continue
            view = client.state.get(f"book:{sym}")
            book = self.market.book(sym)
            if not isinstance(view, _BookView) or view.sequence == book.sequence:
                continue
            view.sequence = book.sequence
            new_bids, new_asks = (dict(x) for x in book.levels(view.depth))
            bids = self._diff(view.bids, new_bids, book.bids)
            asks = self._diff(view.asks, new_asks, book.asks)
            view.bids, view.asks = new_bids, new_asks
            if not bids and not asks:
                continue
            corrupt = sym in client.skip
            if corrupt:
                client.skip.discard(sym)
                self.checksums_corrupted += 1
            client.send(self._book_message("update", book, view, ts, bids, asks, corrupt=corrupt))

    @staticmethod
    def _diff(
        old: dict[int, int], new: dict[int, int], book: dict[int, int]
    ) -> list[tuple[int, int]]:
        """Levels to send: new or changed ones, and qty 0 for levels gone from the book
        (a level only pushed out of the view is left to the client's truncation)."""
        out = [(p, q) for p, q in new.items() if old.get(p) != q]
        out.extend((p, 0) for p in old if p not in new and p not in book)
        return out
