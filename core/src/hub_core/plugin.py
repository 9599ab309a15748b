"""The plugin kit: the one module a connection plugin imports from.

Everything a plugin needs to be written (hook markers, the factory and
connection contracts, the ``Sink`` it delivers to, request bookkeeping,
order books, errors, fixed-point helpers, the bounded framers and the counted read
of the thin connection) is here, so a plugin never depends on the core's
internal layout. Simulators also use ``hub_core.simulation``; tests use
``hub_core.testing``. See sdk-docs/writing-a-plugin.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hub_core.book import LevelTokens, MboBook, OrderBook
from hub_core.config import Credentials, ExchangeConfig, SinkConfig
from hub_core.contracts import (
    PLUGIN_API_VERSION,
    ConnectionFactory,
    ConnectionHealth,
    ExchangeConnection,
    PluginOptions,
    SimulatorSpec,
)
from hub_core.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    DecodeError,
    FrameTooLarge,
    HubError,
    MalformedNumber,
    ProtocolError,
    RateLimited,
    SequenceMismatch,
    SubscriptionError,
)
from hub_core.fixed import (
    PRICE_SCALE,
    format_fixed,
    parse_fixed,
    parse_fixed_bytes,
    parse_level_objects,
    rfc3339_ns,
)
from hub_core.framing import NEED_DATA, LengthPrefixFramer, LineFramer, NeedData
from hub_core.hookspecs import PROJECT_NAME, HubPluginManager, hookimpl, hookspec
from hub_core.outbound import DbnBatcher, RecordGroup
from hub_core.receiving import receive_counted
from hub_core.redact import redact_endpoint, redact_text
from hub_core.requests import Pending, PendingRequests
from hub_core.sinks import SinkFactory, TickSink
from hub_core.streams import wait_for_capacity
from hub_core.ticks import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    Gap,
    Quote,
    Side,
    Trade,
)


def split_host_port(endpoint: str, *, shown: str = "", form: str = "host:port") -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)``; ``ValueError`` saying what
    is wrong (for ``ConnectionFactory.check_endpoint`` and ``connect``). ``shown`` is
    the endpoint as the user wrote it and ``form`` what it should look like, for the
    message (a plugin with a scheme passes what follows ``://``)."""
    shown = shown or endpoint
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{shown!r} is not {form}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{shown!r}: write an IPv6 address as [addr]:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"{shown!r}: port must be 1..65535")
    return host, port


def checked_symbols(
    symbols: Sequence[str],
    check: Callable[[str], str | None],
    *,
    exchange: str = "",
    endpoint: str = "",
    hint: str = "",
) -> list[str]:
    """``symbols`` in order without repeats, each passed through ``check``: it returns
    the symbol as the venue writes it (``None``: as given) or raises ``ValueError``
    saying why the venue cannot take it, which becomes a ``SubscriptionError`` naming
    ``exchange`` and ``endpoint`` with ``hint``. One ``str`` instead of a sequence is a
    ``TypeError`` (it would subscribe to each of its letters). For ``subscribe`` and
    ``unsubscribe``, before anything is sent."""
    if isinstance(symbols, str):
        raise TypeError("symbols must be a sequence of str, not one str")
    out: dict[str, None] = {}
    for symbol in symbols:
        try:
            shown = check(symbol)
        except ValueError as exc:
            raise SubscriptionError(
                str(exc), exchange=exchange, endpoint=endpoint, hint=hint
            ) from None
        out.setdefault(symbol if shown is None else shown)
    return list(out)


def connect_failure(exc: BaseException) -> str:
    """Why a TCP connect failed, in words, for ``f"cannot connect: {connect_failure(exc)}"``.

    anyio's ``connect_tcp`` reports every failure as "All connection attempts
    failed" and keeps the real errors as its cause: this names those instead
    (``connection refused``, ``no route to host``), each distinct one once.
    """
    cause = exc.__cause__
    if isinstance(exc, OSError) and cause is not None and exc.errno is None:
        leaves = list(cause.exceptions) if isinstance(cause, BaseExceptionGroup) else [cause]
        texts = list(dict.fromkeys(connect_failure(leaf) for leaf in leaves))
        if texts:
            return "; ".join(texts)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


@runtime_checkable
class Sink(Protocol):
    """Where a connection delivers market data: one per connection, made by the hub.

    Every method is synchronous and compiled; call the value methods once per
    tick with ``ts_recv`` read once per buffer (``time.time_ns()``). Text
    methods parse decimal text exactly to fixed point and raise
    ``MalformedNumber``. A plugin never writes the sink's counters: it calls
    ``malformed`` and ``venue_error``.
    """

    @property
    def exchange(self) -> str:
        """The connection's name (the TOML table name): every tick carries it."""
        ...

    control: Callable[[str, int, str], object] | None
    """For a plugin whose control messages travel as DBN records: called as
    ``control(kind, number, text)`` with kind ``"symbol_mapping"`` (instrument id,
    symbol), ``"error"`` (code, message) or ``"system"`` (code, message)."""

    def trade(
        self,
        symbol: str,
        price: int,
        size: int,
        side: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        trade_id: str = "",
    ) -> None:
        """Publish a trade from fixed-point ints (``side``: ``Side.BUY``/``SELL``/``NONE``).

        ``sequence`` is the venue's sequence number of the message (0: it has none);
        ``trade_id`` is the venue's own identifier of the trade, as text ("": none).
        """

    def trade_text(
        self,
        symbol: str,
        price: str,
        size: str,
        side: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        trade_id: str = "",
    ) -> None:
        """Publish a trade from decimal text."""

    def trade_text_ms(
        self,
        symbol: str,
        price: str,
        size: str,
        side: str,
        ts_event_ms: int,
        ts_recv: int,
        trade_id: int,
    ) -> None:
        """``trade_text`` for a venue with millisecond times and numbered trades:
        ``ts_event`` = ``ts_event_ms`` * 1e6, ``sequence`` = ``trade_id``, and the
        ``trade_id`` text is its decimal form, made in compiled code."""

    def trade_bytes(
        self,
        symbol: str,
        price: bytes,
        size: bytes,
        side: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        trade_id: str = "",
    ) -> None:
        """Publish a trade from decimal ASCII bytes."""

    def quote(
        self,
        symbol: str,
        bid_price: int,
        bid_size: int,
        ask_price: int,
        ask_size: int,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a top-of-book quote from fixed-point ints."""

    def quote_text(
        self,
        symbol: str,
        bid_price: str,
        bid_size: str,
        ask_price: str,
        ask_size: str,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a quote from decimal text."""

    def quote_bytes(
        self,
        symbol: str,
        bid_price: bytes,
        bid_size: bytes,
        ask_price: bytes,
        ask_size: bytes,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a quote from decimal ASCII bytes."""

    def book_update(
        self,
        symbol: str,
        side: str,
        price: int,
        size: int,
        ts_event: int,
        ts_recv: int,
        action: str = "M",
        sequence: int = 0,
    ) -> None:
        """Publish one price level (``size`` 0 removes it)."""

    def book_update_text(
        self,
        symbol: str,
        side: str,
        price: str,
        size: str,
        ts_event: int,
        ts_recv: int,
        action: str = "M",
        sequence: int = 0,
    ) -> None:
        """Publish one price level from decimal text."""

    def book_update_bytes(
        self,
        symbol: str,
        side: str,
        price: bytes,
        size: bytes,
        ts_event: int,
        ts_recv: int,
        action: str = "M",
        sequence: int = 0,
    ) -> None:
        """Publish one price level from decimal ASCII bytes."""

    def book_level(
        self,
        symbol: str,
        book: OrderBook,
        side: str,
        price: int,
        size: int,
        ts_event: int,
        ts_recv: int,
        action: str = "",
        sequence: int = 0,
    ) -> str:
        """Set one level of the plugin's own ``book`` and publish it as a ``BookUpdate``
        in one call; returns the book's action (``""``: the level was as sent).
        ``action`` ``""`` publishes the book's action (nothing when ``""``); a venue's
        own action letter is published whatever the book says."""
        ...

    def book_levels_text(
        self,
        symbol: str,
        book: OrderBook,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> int:
        """Apply a depth message's ``(price, size)`` text levels to the plugin's own
        ``book`` and publish a ``BookUpdate`` per level that changed it; returns how
        many. All numbers are parsed first (``MalformedNumber``: nothing applied,
        nothing published), then bids, then asks, in order; the book is stamped
        with ``ts_event`` and ``sequence``."""
        ...

    def book_levels_json(
        self,
        symbol: str,
        book: OrderBook,
        bids: bytes,
        asks: bytes,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> int:
        """``book_levels_text`` with each side still as the bytes of a JSON array of
        ``["price", "size"]`` strings (no ``str`` pair built per level); any other
        shape raises ``MalformedNumber`` before anything is applied."""
        ...

    def book_changes_json(
        self,
        symbol: str,
        book: OrderBook,
        changes: bytes,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        bid: bytes = b"buy",
        ask: bytes = b"sell",
    ) -> int:
        """A depth message of ``[side, "price", "size"]`` string triples as JSON bytes,
        applied to ``book`` in the order sent and published per change that changed it
        (``MalformedNumber`` for any other shape or side before anything is applied)."""
        ...

    def book_levels_checked(
        self,
        symbol: str,
        book: OrderBook,
        tokens: LevelTokens,
        bids: bytes,
        asks: bytes,
        depth: int,
        checksum: int,
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
        price_key: bytes = b"price",
        size_key: bytes = b"qty",
    ) -> int:
        """A checksummed depth message: ``bids``/``asks`` as JSON arrays of level objects
        (``parse_level_objects``; ``MalformedNumber`` before anything is applied),
        applied to ``book`` and ``tokens``, trimmed to ``depth``, and published only if
        ``tokens.crc32(10) == checksum``: the count published, or -1 (nothing published,
        the book holds the message: resynchronise it)."""
        ...

    def book_snapshot(
        self,
        symbol: str,
        bids: tuple[tuple[int, int], ...],
        asks: tuple[tuple[int, int], ...],
        ts_event: int,
        ts_recv: int,
        sequence: int = 0,
    ) -> None:
        """Publish a whole book, levels best first as ``(price, size)``."""

    def book_clear(
        self, symbol: str, ts_event: int, ts_recv: int, sequence: int = 0, reason: str = ""
    ) -> None:
        """Publish a ``BookClear``: every level of ``symbol`` is gone (``reason``: the
        venue's word for why, "" when it gives none). A ``book_update*`` with action
        ``R`` publishes one too; no ``BookUpdate`` ever carries ``R``."""

    def feed_dbn(self, data: bytes, ts_recv: int) -> int:
        """Decode DBN v3 records from ``data`` (any split); returns how many."""
        ...

    def map_symbol(self, instrument_id: int, symbol: str) -> None:
        """Tell the DBN decoder which symbol ``instrument_id`` is."""

    @property
    def dbn_pending(self) -> int:
        """Bytes of a partial DBN record ``feed_dbn`` keeps for the next call (the next
        buffer's first record starts that record's length minus this into it)."""
        ...

    def recover_blind(self) -> tuple[int, str]:
        """Call before the new session's first data when the venue will replay what the
        connection missed: the blind window the hub opened at the drop is taken away (no
        ``Gap``). Returns its ``(start ns, reason)`` (``(0, "")``: none open); if the
        replay falls short, publish a ``Gap`` for what is missing with ``gap``."""
        ...

    def ignore_instrument(self, instrument_id: int, on: bool = True) -> None:
        """Stop (``on``) or resume publishing the market records of ``instrument_id`` that
        ``feed_dbn`` decodes: unsubscribing on a venue that cannot unsubscribe within a
        session. A new session (``reset_session``) forgets it."""

    def configure_dbn(
        self, check_sequence: bool, max_record_len: int, mbp1_trades: bool = False
    ) -> None:
        """Whether ``feed_dbn`` checks sequence numbers, the largest record it takes, and
        whether an mbp-1 record whose action is a trade is also a ``Trade`` (Databento's
        mbp-1 and tbbo schemas carry the trades; leave it off when a trades schema
        already does)."""

    def gap(
        self,
        symbol: str,
        start_ts: int,
        end_ts: int,
        reason: str,
        start_seq: int = 0,
        end_seq: int = 0,
    ) -> None:
        """Publish a ``Gap`` the plugin alone can see (a sequence break, a failed checksum).
        Reconnect Gaps are the supervisor's; never publish those."""

    def publish(self, tick: object) -> None:
        """Publish a tick built elsewhere (a ``Trade``, ``Quote``, ``BookUpdate``,
        ``BookSnapshot``, ``BookClear`` or ``Gap`` of this exchange), e.g. one held by a
        diverted sink."""

    def relay(self, exchange: str) -> Sink:
        """The sink of ``exchange``, an exchange another hub connects to, for a connection
        that brings that hub's ticks in (a NATS source): ticks keep their original exchange
        name and are counted under it; the hub's own DBN system records (size decimals,
        Gaps) are understood by its ``feed_dbn``. Created on first use; ``ValueError`` if
        ``exchange`` names one of this hub's own connections."""
        ...

    def state(self, state: str, reason: str, endpoint: str = "", attempt: int = 0) -> None:
        """Publish a ``ConnectionStateChanged`` of this exchange. Only for a relayed
        exchange (``relay``), reporting its state as the other hub saw it: a
        connection's own states are the supervisor's."""

    def take_counts(self, other: object) -> None:
        """Add what a diverted sink counted (malformed frames, venue errors) to this one."""

    def malformed(self, reason: str) -> None:
        """Count and log a frame the codec could not use."""

    def venue_error(self, code: int, text: str) -> None:
        """Count and log an error the venue reported."""

    def symbol_error(self, symbol: str, reason: str) -> None:
        """Mark one symbol in error mid-session; shown per symbol until ``symbol_ok``."""

    def symbol_ok(self, symbol: str) -> None:
        """A symbol marked with ``symbol_error`` is healthy again."""

    def reset_session(self) -> None:
        """A new session begins: forget partial records and sequence state."""

    @property
    def backpressured(self) -> bool:
        """True while a ``"block"`` stream is full: ``await wait_for_capacity(sink)``."""
        ...

    def add_capacity_waiter(self, wake: Callable[[], object]) -> None:
        """Call ``wake()`` once no ``"block"`` stream is over capacity."""


def divert_sink(
    exchange: str,
    on_trade: Callable[[Trade], object],
    on_quote: Callable[[Quote], object],
    on_book_update: Callable[[BookUpdate], object],
    on_snapshot: Callable[[BookSnapshot], object],
    on_gap: Callable[[Gap], object],
    on_clear: Callable[[BookClear], object] | None = None,
) -> Sink:
    """A sink whose ticks go to the given callbacks instead of the hub's bus.

    ``on_clear`` receives the ``BookClear`` ticks; a plugin that never clears a
    book may leave it out, and then a clear through this sink goes nowhere.

    For a plugin that must see ticks before they are published: a make-before-break
    session replacement holds both sessions' ticks and publishes one stream through
    the real sink (``sink.publish``). Its counters reach the real sink through
    ``real.take_counts(diverted)``.
    """
    from hub_core.bus import TypedEventBus
    from hub_core.latency import LatencyRecorder
    from hub_core.processor import ConnectionSink

    bus = TypedEventBus()
    bus.subscribe(Trade, on_trade)
    bus.subscribe(Quote, on_quote)
    bus.subscribe(BookUpdate, on_book_update)
    bus.subscribe(BookSnapshot, on_snapshot)
    bus.subscribe(Gap, on_gap)
    if on_clear is not None:
        bus.subscribe(BookClear, on_clear)
    return ConnectionSink(exchange, bus, LatencyRecorder(1))


if TYPE_CHECKING:
    from hub_core.processor import ConnectionSink

    def _the_compiled_sink_is_a_sink(sink: ConnectionSink) -> Sink:
        # mypy checks here that the implementation satisfies the protocol
        return sink


__all__ = [
    "NEED_DATA",
    "PLUGIN_API_VERSION",
    "PRICE_SCALE",
    "PROJECT_NAME",
    "AuthenticationError",
    "BookClear",
    "BookSnapshot",
    "BookUpdate",
    "ConfigError",
    "ConnectionFactory",
    "ConnectionFailed",
    "ConnectionHealth",
    "ConnectionStateChanged",
    "Credentials",
    "DbnBatcher",
    "DecodeError",
    "ExchangeConfig",
    "ExchangeConnection",
    "FrameTooLarge",
    "Gap",
    "HubError",
    "HubPluginManager",
    "LengthPrefixFramer",
    "LevelTokens",
    "LineFramer",
    "MalformedNumber",
    "MboBook",
    "NeedData",
    "OrderBook",
    "Pending",
    "PendingRequests",
    "PluginOptions",
    "ProtocolError",
    "Quote",
    "RateLimited",
    "RecordGroup",
    "SequenceMismatch",
    "Side",
    "SimulatorSpec",
    "Sink",
    "SinkConfig",
    "SinkFactory",
    "SubscriptionError",
    "TickSink",
    "Trade",
    "checked_symbols",
    "connect_failure",
    "divert_sink",
    "format_fixed",
    "hookimpl",
    "hookspec",
    "parse_fixed",
    "parse_fixed_bytes",
    "parse_level_objects",
    "receive_counted",
    "redact_endpoint",
    "redact_text",
    "rfc3339_ns",
    "split_host_port",
    "wait_for_capacity",
]
