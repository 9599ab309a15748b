"""``ChannelSession``: what the Coinbase and Kraken sessions share.

Both venues subscribe by product and channel in JSON messages, answer every
request with a reply on the WebSocket, and send books over it too: a snapshot,
then updates. A book that can no longer be trusted is dropped and its channel
resubscribed on the same connection for a fresh snapshot (``Resubscribe``);
those resync requests are the session's own, so their replies never reach the
connector.

The base keeps the bookkeeping: request ids and the products of one message,
one state per subscribed product (``SymbolState``: its book and where a resync
of it stands), stream names, which requests are the session's own, what a
reply means for the connector (``Ack``, ``Refused`` or nothing), frames that
cannot be used, the counters of ignored ones, book resynchronisation,
``book()`` and ``rebind()``. A venue's session supplies its messages
(``_payload``), how a reply finds its request (``_track``), and its frames
(``_dispatch``, ``_on_invalid``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import ClassVar, Final, Generic, TypeVar

import msgspec

from hub_core.plugin import DecodeError, OrderBook, Sink
from hub_plugin_websocket.codec import (
    Ack,
    DialectEvent,
    DialectSession,
    Notice,
    RateLimits,
    Refused,
    Request,
    Resubscribe,
    SessionConfig,
    SessionCounters,
)

__all__ = ["DECODE_ERRORS", "ChannelSession", "SymbolState"]

DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, DecodeError, ValueError)
"""What decoding a frame or a field of it raises when it is not usable."""

_ENC: Final = msgspec.json.Encoder()
"""Shared by every session: an encoder holds no per-call state."""


class SymbolState:
    """One subscribed product: its local book (when a book channel is subscribed) and
    where a resynchronisation of it stands."""

    __slots__ = ("blind_since", "book", "live", "resyncing", "wants_book")

    def __init__(self, wants_book: bool) -> None:
        self.book = OrderBook()
        self.wants_book = wants_book
        self.live = False
        """A snapshot made the book usable (updates are applied and published)."""
        self.resyncing = False
        """Resubscribed for a new snapshot: the old subscription's tail is dropped."""
        self.blind_since = 0
        """Wall-clock ns up to which a Gap covers a book being resynchronised (0: none)."""

    def clear(self) -> None:
        """No book until the next snapshot."""
        self.book.clear()
        self.live = False


StateT = TypeVar("StateT", bound=SymbolState)
MsgT = TypeVar("MsgT")


class ChannelSession(DialectSession, Generic[StateT, MsgT]):
    """A session with a venue that subscribes products to channels and sends its books
    over the WebSocket. Sans-I/O, single-threaded; see the module docstring."""

    venue: ClassVar[str] = ""
    """The dialect's name, which starts every message the session writes."""
    one_channel_per_message: ClassVar[bool] = False
    """Each subscribe names one channel (Kraken) instead of every channel (Coinbase)."""

    def __init__(self, sink: Sink, config: SessionConfig, limits: RateLimits) -> None:
        self.counters = SessionCounters()
        self._channels = config.channels
        self._per_message = limits.streams_per_message
        self._book_channel = next((ch for ch in config.channels if self._is_book(ch)), None)
        # the venue's names of the channels, as stream names use them
        self._stream_channels = tuple(dict.fromkeys(map(self._venue_channel, config.channels)))
        self._next_id = 1
        self._streams: set[str] = set()
        self._symbols: dict[str, StateT] = {}
        self._internal: set[int] = set()  # our own resync requests: no one awaits them
        self._enc = _ENC
        self.rebind(sink)

    # -- what a venue's session supplies ---------------------------------------------------
    @abc.abstractmethod
    def _new_state(self, wants_book: bool) -> StateT:
        """The state of a product just subscribed."""

    @abc.abstractmethod
    def _payload(self, op: str, symbols: list[str], channels: Sequence[str], req_id: int) -> bytes:
        """The message that does ``op`` for ``symbols`` on ``channels`` (configured names)."""

    @abc.abstractmethod
    def _track(self, req: Request) -> None:
        """Remember ``req`` until its reply (the venue's replies find requests their way)."""

    @abc.abstractmethod
    def _dispatch(self, msg: MsgT, ts_recv: int) -> DialectEvent | None:
        """One decoded message: ticks to the sink, an event for the connector returned."""

    @abc.abstractmethod
    def _on_invalid(self, frame: bytes, exc: msgspec.ValidationError) -> DialectEvent | None:
        """A frame that is JSON but none of the messages ``_decode`` knows."""

    _decode: Callable[[bytes], MsgT]
    """The decoder of the messages ``_dispatch`` handles (set by the venue's session)."""

    def _is_book(self, channel: str) -> bool:
        """``channel`` (a configured name) is the book's."""
        return False

    def _venue_channel(self, channel: str) -> str:
        """The venue's name of the configured ``channel`` (in stream names and messages)."""
        return channel

    # -- subscriptions ---------------------------------------------------------------------
    @property
    def streams(self) -> frozenset[str]:
        return frozenset(self._streams)

    def _stream_names(self, symbol: str) -> list[str]:
        return [f"{ch}:{symbol}" for ch in self._stream_channels]

    def subscribe(self, symbols: Sequence[str]) -> list[Request]:
        wanted = [s for s in dict.fromkeys(symbols) if s not in self._symbols]
        wants_book = self._book_channel is not None
        for sym in wanted:
            self._symbols[sym] = self._new_state(wants_book)
            self._streams.update(self._stream_names(sym))
        return self._requests("subscribe", wanted)

    def unsubscribe(self, symbols: Sequence[str]) -> list[Request]:
        gone = [s for s in dict.fromkeys(symbols) if s in self._symbols]
        for sym in gone:
            del self._symbols[sym]
            self._streams.difference_update(self._stream_names(sym))
        return self._requests("unsubscribe", gone)

    def _requests(self, op: str, symbols: list[str]) -> list[Request]:
        if self.one_channel_per_message:
            groups: Sequence[Sequence[str]] = [(ch,) for ch in self._channels]
        else:
            groups = [self._channels]
        step = self._per_message
        return [
            self._request(op, symbols[i : i + step], channels)
            for channels in groups
            for i in range(0, len(symbols), step)
        ]

    def _request(
        self, op: str, symbols: list[str], channels: Sequence[str], *, internal: bool = False
    ) -> Request:
        req_id = self._next_id
        self._next_id = 1 if req_id >= 2**31 - 1 else req_id + 1
        payload = self._payload(op, symbols, channels, req_id)
        venue_channels = [self._venue_channel(ch) for ch in channels]
        streams = tuple(f"{ch}:{s}" for s in symbols for ch in venue_channels)
        req = Request(req_id, op, payload, streams, tuple(symbols))
        self._track(req)
        if internal:
            self._internal.add(req_id)
        return req

    # -- replies ---------------------------------------------------------------------------
    def _own(self, req: Request) -> bool:
        """``req`` is answered: True if it was one of the session's resync requests."""
        if req.id in self._internal:
            self._internal.discard(req.id)
            return True
        return False

    def _accepted(self, req: Request, result: object) -> DialectEvent | None:
        """The venue took ``req``: an ``Ack`` for the connector (nothing for our own)."""
        return None if self._own(req) else Ack(req.id, result)

    def _refused(
        self, req: Request | None, message: str, reason: str | None = None
    ) -> DialectEvent | None:
        """The venue refused ``req`` (``None``: a refusal no request can be matched to).

        ``message`` is what the connector shows; ``reason``, the venue's own words
        (``message`` if not given), is what a refused resync reports."""
        if req is None:
            return Refused(None, 0, message)
        if self._own(req):
            return self._resync_refused(req, message if reason is None else reason)
        if req.op == "subscribe":
            # the venue did not take these: forget them and their books
            for sym in req.symbols:
                self._symbols.pop(sym, None)
            self._streams.difference_update(req.streams)
        return Refused(req.id, 0, message)

    def _resync_refused(self, req: Request, reason: str) -> DialectEvent | None:
        """One of our resync requests was refused (the default logs it)."""
        return Notice(f"{self.venue}: resync {req.op} refused: {reason}")

    # -- frames ----------------------------------------------------------------------------
    def feed(self, frame: bytes, ts_recv: int) -> DialectEvent | None:
        """One text frame: ticks to the sink; replies and resyncs returned. Never raises."""
        self.counters.frames += 1
        try:
            msg = self._decode(frame)
        except DECODE_ERRORS as exc:
            return self._undecodable(frame, exc)
        return self._handle(msg, frame, ts_recv)

    def _undecodable(self, frame: bytes, exc: Exception) -> DialectEvent | None:
        """``frame`` did not decode (``exc``): JSON of another shape, or not JSON."""
        if isinstance(exc, msgspec.ValidationError):
            return self._on_invalid(frame, exc)
        self._sink.malformed(f"{self.venue}: {type(exc).__name__}: {exc}")
        return None

    def _handle(self, msg: MsgT, frame: bytes, ts_recv: int) -> DialectEvent | None:
        """``feed`` after the decode: ``msg`` dispatched, what it cannot use reported."""
        try:
            return self._dispatch(msg, ts_recv)
        except DECODE_ERRORS as exc:
            return self._unusable(msg, frame, exc)

    def _unusable(self, msg: MsgT, frame: bytes, exc: Exception) -> DialectEvent | None:
        """``msg`` (of ``frame``) decoded, but ``_dispatch`` could not use it (``exc``)."""
        if isinstance(exc, msgspec.ValidationError):
            # a part decoded late (a msgspec.Raw field, read only when used) is not of
            # its type: the frame is one the decoder does not know, as if it had said so
            return self._on_invalid(frame, exc)
        # the wire structs are named _Kind: the venue's kind is the name without "_"
        self._sink.malformed(f"{self.venue}: {type(msg).__name__[1:]}: {exc}")
        return None

    def _ignored(self, kind: str) -> None:
        c = self.counters
        c.ignored += 1
        c.by_kind[kind] = c.by_kind.get(kind, 0) + 1

    # -- books -----------------------------------------------------------------------------
    def _resync(self, symbol: str, st: StateT, ts: int, gap: str | None) -> Resubscribe:
        """Drop ``symbol``'s book and resubscribe its channel for a fresh snapshot, after a
        ``Gap`` saying ``gap`` (``None``: the caller published one already)."""
        if gap is not None:
            # the book's last update may be stamped after the message that showed the
            # break: a Gap never ends before it starts
            self._sink.gap(symbol, min(st.book.last_update_ns or ts, ts), ts, gap)
        st.clear()
        st.resyncing = True
        st.blind_since = ts
        requests = (
            self._book_request("unsubscribe", symbol),
            self._book_request("subscribe", symbol),
        )
        return Resubscribe(
            f"{self.venue}: the {symbol} book must be rebuilt from a new snapshot", requests
        )

    def _book_request(self, op: str, symbol: str) -> Request:
        """One of our own requests: ``op`` of ``symbol``'s book channel alone."""
        return self._request(op, [symbol], (self._book_channel or "",), internal=True)

    def book(self, symbol: str) -> OrderBook | None:
        """The local book of ``symbol`` once a snapshot made it live (tests, diagnostics)."""
        st = self._symbols.get(symbol)
        return st.book if st is not None and st.live else None

    def rebind(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on (also the constructor's binding); a venue's
        session binds the sink methods its hot path calls here too."""
        self._sink = sink
