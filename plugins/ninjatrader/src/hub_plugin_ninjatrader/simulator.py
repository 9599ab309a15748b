"""A loopback HubFeed server: what the NinjaScript add-on does, without NinjaTrader.

``NinjaTraderSimulator`` speaks the protocol of sdk-docs/protocols/ninjatrader.md on
127.0.0.1 or ::1 only, on the kit's ``LoopbackVenue``. Each configured symbol is a
market of the kit's ``MarketModel`` (``depth_levels`` levels a side, volatility that
moves between regimes) making trades, top-of-book quotes and depth updates at ``rate``
events per second; every session gets the records of the symbols and schemas it
subscribed, with its own instrument ids and ``sequence``.

Faults (``hub_core.simulation.VenueFaults``, all async): ``drop_connections()``,
``stall()``/``resume()``, ``send_malformed(kind)``, ``skip_sequence(n)``,
``refuse_credentials(on)``, ``refuse_symbol(symbol, on)``; and the listener's
``refuse_connections()``/``accept_connections()``.

``bench=True`` replaces the market with pre-encoded batches sent as fast as the socket
takes them (well over 1.5 M records/s on loopback); only the sequence numbers are
rewritten per batch, with one big-int addition.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio

from hub_core.simulation import (
    LOOPBACK_HOSTS,
    PRICE_SCALE,
    UNDEF_TIMESTAMP,
    BookClear,
    BookUpdate,
    ClientLink,
    Instrument,
    LoopbackVenue,
    MarketModel,
    MarketUpdate,
    OptionParser,
    VenueClient,
    encode_book_clear,
    encode_book_update,
    encode_error,
    encode_heartbeat,
    encode_mbp1_raw,
    encode_symbol_mapping,
    encode_system,
    encode_trade_raw,
    parse_bool,
    parse_list,
    parse_users,
    simulator_options,
)
from hub_plugin_ninjatrader import codec as c

log = logging.getLogger("hub_plugin_ninjatrader.simulator")

__all__ = ["DEFAULT_SYMBOLS", "LOOPBACK_HOSTS", "NinjaTraderSimulator", "serve_simulator"]

DEFAULT_SYMBOLS: Final = ("ES", "NQ")
SERVER_NAME: Final = "hub-simulator/0.1.0"
_U32: Final = 0xFFFF_FFFF
_OUT_LIMIT: Final = 4 * 1024 * 1024
"""Per-session bytes waiting to be sent past which market data is dropped (sequence
numbers still advance, so the client sees the gap: the protocol's slow-reader rule)."""
_HANDSHAKE_TIMEOUT_S: Final = 10.0
_BENCH_BATCH: Final = 8192

# known roots: (first bid, tick size) in display units
_PRICES: Final = {"ES": (5000.0, 0.25), "NQ": (18000.0, 0.25), "CL": (70.0, 0.01)}

MALFORMED_UNKNOWN_RTYPE: Final = bytes([8, 0xEE]) + bytes(30)
"""A 32-byte record of an rtype no DBN version defines: skipped by its length."""
MALFORMED_SHORT_TRADE: Final = bytes([8, 0x00]) + bytes(14) + b"\xee" * 16
"""A trades (mbp-0) record 16 bytes shorter than the layout: a framing error."""


def _next_seq(seq: int) -> int:
    # sequence 0 means "not sequenced" in DBN, so the u32 wrap skips it
    return 1 if seq >= _U32 else seq + 1


def _fixed(value: float) -> int:
    return round(value * PRICE_SCALE)


def instrument(symbol: str, depth: int) -> Instrument:
    """The simulated instrument of ``symbol``: its root (``ES`` of ``ES 03-26``) gives
    the first price and tick; sizes are whole contracts."""
    first, tick = _PRICES.get(symbol.split(" ", maxsplit=1)[0], (100.0, 0.01))
    return Instrument(symbol, _fixed(first), _fixed(tick), depth=depth)


# -- sessions ---------------------------------------------------------------------------
@dataclass
class _Sub:
    instrument_id: int
    schemas: frozenset[str]


class _Session(VenueClient[str]):
    """One HubFeed session: the codec, its instrument ids, its own sequence numbers."""

    def __init__(self, venue: NinjaTraderSimulator, link: ClientLink) -> None:
        super().__init__(venue, link)
        self.codec = c.ServerCodec()
        self.subs: dict[str, _Sub] = {}
        self.ids: dict[str, int] = {}
        self.seq = 0
        self.session_id = ""
        self.records_sent = 0
        self.dropped = 0
        self.dropped_reported = 0
        self.out_limit = venue.max_buffer
        self.bench_task = False

    def take_seq(self) -> int:
        self.seq = _next_seq(self.seq)
        return self.seq

    def _room(self, schema: str, symbol: str) -> _Sub | None:
        """The subscription of ``symbol`` if it takes ``schema`` and the record fits:
        a record that does not fit still takes its sequence number (the gap)."""
        sub = self.subs.get(symbol)
        if sub is None or schema not in sub.schemas:
            return None
        if self.backlog >= self.out_limit:
            self.take_seq()
            self.dropped += 1
            return None
        return sub

    # -- market data for this session ----------------------------------------------
    def trade(self, symbol: str, price: int, size: int, side: str, ts: int) -> None:
        sub = self._room("trades", symbol)
        if sub is not None:
            seq = self.take_seq()
            self.send(encode_trade_raw(sub.instrument_id, price, size, side, ts, ts, seq))
            self.records_sent += 1

    def quote(self, market: MarketModel, symbol: str, ts: int) -> None:
        sub = self._room("mbp-1", symbol)
        if sub is not None:
            bid, bid_size, ask, ask_size = market.book(symbol).top()
            seq = self.take_seq()
            self.send(encode_mbp1_raw(sub.instrument_id, bid, bid_size, ask, ask_size, ts, ts, seq))
            self.records_sent += 1

    def level(self, symbol: str, side: str, price: int, size: int, action: str, ts: int) -> None:
        sub = self._room("mbo", symbol)
        if sub is not None:
            seq = self.take_seq()
            update = BookUpdate("", symbol, side, price, size, ts, ts, action, 0, seq)
            self.send(encode_book_update(update, sub.instrument_id))
            self.records_sent += 1

    def clear(self, symbol: str, ts: int) -> None:
        """The book of ``symbol`` is gone (the record a ``BookClear`` decodes from)."""
        sub = self._room("mbo", symbol)
        if sub is not None:
            seq = self.take_seq()
            self.send(encode_book_clear(BookClear("", symbol, ts, ts, seq), sub.instrument_id))
            self.records_sent += 1

    def snapshot(self, market: MarketModel, symbol: str, schemas: frozenset[str], ts: int) -> None:
        """Current state after a subscribe: the book (clear + one add a level), then the
        quote, the order of every market event (depth first, top of book after)."""
        if "mbo" in schemas:
            self.clear(symbol, ts)
            bids, asks = market.book(symbol).levels()
            for side, levels in (("B", bids), ("A", asks)):
                for price, size in levels:
                    self.level(symbol, side, price, size, "A", ts)
        if "mbp-1" in schemas:
            self.quote(market, symbol, ts)


class NinjaTraderSimulator(LoopbackVenue[_Session]):
    """A HubFeed server on loopback with a random-walk market and fault injection.

    Use ``async with NinjaTraderSimulator(["ES", "NQ"], rate=200) as sim:``
    then connect to ``sim.endpoint``; or ``await sim.serve()`` in a task.
    """

    name = "HubFeed"
    client_errors = (c.CodecError,)

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        rate: float = 100.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Mapping[str, str] | None = None,
        depth_levels: int = 5,
        heartbeat_s: int = 10,
        max_clients: int = 16,
        seed: int | None = None,
        bench: bool = False,
        bench_batch: int = _BENCH_BATCH,
        max_buffer: int = _OUT_LIMIT,
        refuse_symbols: Sequence[str] = (),
    ) -> None:
        for s in symbols:
            c.validate_symbol(s)
        if not 1 <= depth_levels <= 10:
            raise ValueError(f"depth_levels must be 1..10, got {depth_levels}")
        market = MarketModel([instrument(s, depth_levels) for s in symbols], seed=seed)
        super().__init__(
            market,
            rate,
            host=host,
            port=port,
            heartbeat_s=max(1, min(heartbeat_s, c.MAX_HEARTBEAT_S)),
            refuse_symbols=refuse_symbols,
        )
        self.market: MarketModel = market
        self.users = dict(users) if users else {}
        self.depth_levels = depth_levels
        self.max_clients = max_clients
        self.bench = bench
        self.bench_batch = max(2, bench_batch)
        self.max_buffer = max_buffer
        """Bytes queued per session past which its market data is dropped (slow reader)."""
        self.heartbeat_interval = max(1, min(heartbeat_s, c.MAX_HEARTBEAT_S))
        """Whole seconds of silence after which a session gets a heartbeat (unless its
        Hello asks for another interval)."""
        self.sessions_started = 0
        """Handshakes accepted so far."""

    # -- faults ---------------------------------------------------------------------------
    async def send_malformed(self, kind: str = "unknown_rtype") -> None:
        """Send one malformed record to every session.

        ``"unknown_rtype"``: a well-framed record of an undefined rtype (skipped by
        its length). ``"short_trade"``: a trade record shorter than its layout (the
        reader must resynchronise on the next record).
        """
        record = {
            "unknown_rtype": MALFORMED_UNKNOWN_RTYPE,
            "short_trade": MALFORMED_SHORT_TRADE,
        }.get(kind)
        if record is None:
            raise ValueError(f"unknown malformed kind {kind!r}")
        for s in self.connected():
            if s.established:
                s.send(record)

    async def skip_sequence(self, n: int = 1) -> None:
        """Make every session skip ``n`` sequence numbers (the client must see a gap)."""
        for s in self.connected():
            for _ in range(n):
                s.take_seq()

    # -- introspection -----------------------------------------------------------------------
    @property
    def records_sent(self) -> int:
        """Market-data records queued to live sessions (dropped ones excluded)."""
        return sum(s.records_sent for s in self.connected())

    # -- the venue's part -----------------------------------------------------------------------
    def new_client(self, link: ClientLink) -> _Session:
        return _Session(self, link)

    def market_symbols(self) -> list[str]:
        return [] if self.bench else super().market_symbols()

    def on_market(self, update: MarketUpdate, ts: int) -> None:
        sym = update.symbol
        for s in self.connected():
            if sym not in s.subs:
                continue
            if (t := update.trade) is not None:
                s.trade(sym, t.price, t.size, t.side, ts)
            for ch in update.changes:
                s.level(sym, ch.side, ch.price, ch.size, ch.action, ts)
            if update.top_changed:
                s.quote(self.market, sym, ts)

    def heartbeat(self, client: _Session) -> None:
        client.send(encode_heartbeat(time.time_ns()))

    def before_write(self, client: _Session) -> None:
        if client.dropped > client.dropped_reported:
            # the protocol's optional slow-reader warning (system code 2)
            text = f"op=slow_reader|dropped={client.dropped - client.dropped_reported}"
            client.dropped_reported = client.dropped
            client.send(encode_system(text, c.SYS_SLOW_READER_WARNING, time.time_ns()))

    # -- one connection ------------------------------------------------------------------------
    async def serve_client(self, client: _Session) -> None:
        codec = client.codec
        client.send(codec.send(c.Greeting(c.PROTOCOL_VERSION, codec.new_cram(), SERVER_NAME)))
        with anyio.move_on_after(_HANDSHAKE_TIMEOUT_S) as timeout:
            hello = await self._receive_hello(client)
        if timeout.cancelled_caught or hello is None:
            return
        reject = self._check_hello(client, hello)
        if reject is not None:
            client.send(codec.send(reject))
            return
        heartbeat_s = (
            hello.heartbeat_s if hello.heartbeat_s is not None else self.heartbeat_interval
        )
        client.heartbeat_s = heartbeat_s
        client.session_id = secrets.token_hex(8)
        client.established = True
        self.sessions_started += 1
        client.send(codec.send(c.HandshakeAccepted(client.session_id, heartbeat_s)))
        await self._reader(client)

    async def _receive_hello(self, client: _Session) -> c.Hello | None:
        codec = client.codec
        while True:
            try:
                event = codec.next_event()
                if isinstance(event, c.Hello):
                    return event
                if isinstance(event, c.ConnectionClosed):
                    return None
                codec.receive_data(await client.receive_bytes())
            except c.CodecError as exc:
                client.send(codec.send(c.HandshakeRejected(c.REJECT_BAD_REQUEST, str(exc))))
                return None

    def _check_hello(self, client: _Session, hello: c.Hello) -> c.HandshakeRejected | None:
        if hello.version != c.PROTOCOL_VERSION:
            return c.HandshakeRejected(
                c.REJECT_VERSION,
                f"version {hello.version} is not supported; this server speaks "
                f"{c.PROTOCOL_VERSION}",
            )
        if self.credentials_refused:
            return c.HandshakeRejected(c.REJECT_AUTH, "credentials refused")
        if self.users:
            password = self.users.get(hello.user or "")
            if password is None or not client.codec.verify(hello, password):
                return c.HandshakeRejected(c.REJECT_AUTH, "unknown user or wrong password")
        if self.session_count >= self.max_clients:
            return c.HandshakeRejected(
                c.REJECT_LIMIT, f"{self.max_clients} clients already connected"
            )
        return None

    async def _reader(self, client: _Session) -> None:
        codec = client.codec
        while True:
            try:
                event = codec.next_event()
                if isinstance(event, c.NeedData):
                    codec.receive_data(await client.receive_bytes())
                    continue
            except c.LineTooLong as exc:
                # the protocol's only fatal request error: say why, then close
                text = c.request_error_text("", 0, str(exc))
                client.send(encode_error(text, c.ERR_INVALID_SUBSCRIPTION, time.time_ns()))
                return
            if isinstance(event, c.ConnectionClosed):
                return
            self._on_request(client, event)

    def _on_request(
        self,
        client: _Session,
        event: c.Subscribe | c.Unsubscribe | c.Ping | c.BadRequest | c.Hello,
    ) -> None:
        ts = time.time_ns()
        if isinstance(event, c.Ping):
            client.send(encode_system(c.pong_text(event.req_id), c.SYS_HEARTBEAT, ts))
        elif isinstance(event, c.Subscribe):
            self._subscribe(client, event, ts)
        elif isinstance(event, c.Unsubscribe):
            removed = 0
            for sym in event.symbols:
                if client.subs.pop(sym, None) is not None:
                    client.subscriptions.discard(sym)
                    removed += 1
            text = c.unsubscribe_ack_text(event.req_id, removed)
            client.send(encode_system(text, c.SYS_UNSUBSCRIBE_ACK, ts))
        elif isinstance(event, c.BadRequest):
            text = c.request_error_text(event.op, event.req_id, event.reason)
            client.send(encode_error(text, c.ERR_INVALID_SUBSCRIPTION, ts))

    def _subscribe(self, client: _Session, event: c.Subscribe, ts: int) -> None:
        accepted: list[str] = []
        rejected = 0
        schemas = frozenset(event.schemas)
        for sym in dict.fromkeys(event.symbols):
            if sym not in self.market or self.symbol_refused(sym):
                rejected += 1
                text = c.symbol_error_text("subscribe", event.req_id, sym, "unknown instrument")
                client.send(encode_error(text, c.ERR_SYMBOL_RESOLUTION_FAILED, ts))
                continue
            iid = client.ids.setdefault(sym, len(client.ids) + 1)
            old = client.subs.get(sym)
            client.subs[sym] = _Sub(iid, schemas | old.schemas if old else schemas)
            client.subscriptions.add(sym)
            client.send(encode_symbol_mapping(iid, sym, ts, ts, UNDEF_TIMESTAMP))
            accepted.append(sym)
        text = c.subscribe_ack_text(event.req_id, len(accepted), rejected)
        client.send(encode_system(text, c.SYS_SUBSCRIPTION_ACK, ts))
        if self.bench:
            if accepted and not client.bench_task:
                client.bench_task = True
                client.start_soon(self._blast, client)
            return
        for sym in accepted:
            client.snapshot(self.market, sym, schemas, ts)

    # -- bench mode ------------------------------------------------------------------------------
    async def _blast(self, session: _Session) -> None:
        """Send pre-encoded trade/quote batches as fast as the socket takes them."""
        symbols = [s for s in session.subs if s in self.market]
        n = self.bench_batch
        ts = time.time_ns()
        template = bytearray()
        mask = bytearray()
        for i in range(n):
            sym = symbols[(i // 2) % len(symbols)]
            bid, _, ask, _ = self.market.book(sym).top()
            iid = session.subs[sym].instrument_id
            if i % 2 == 0:
                rec = encode_trade_raw(iid, ask, PRICE_SCALE, "B", ts, ts, i)
            else:
                rec = encode_mbp1_raw(iid, bid, 10 * PRICE_SCALE, ask, 12 * PRICE_SCALE, ts, ts, i)
            # both layouts keep `sequence` (u32) at byte 44 of the record
            mask += bytes(len(rec))
            mask[len(template) + 44] = 1
            template += rec
        # sequence of record i in a batch = base + i: one big-int multiply-add per batch
        base_int = int.from_bytes(template, "little")
        mask_int = int.from_bytes(mask, "little")
        size = len(template)
        offsets = [i for i, b in enumerate(mask) if b]
        while True:
            base = _next_seq(session.seq)
            if base + n - 1 <= _U32:
                payload = (base_int + base * mask_int).to_bytes(size, "little")
                session.seq = base + n - 1
            else:
                # the u32 wrap falls inside this batch: number records one by one
                buf = bytearray(template)
                for off in offsets:
                    struct.pack_into("<I", buf, off, session.take_seq())
                payload = bytes(buf)
            session.records_sent += n
            # one batch in flight: the next is made once the writer has sent this one
            session.send(payload)
            await session.drained()


# -- SimulatorSpec.serve -------------------------------------------------------------------
_OPTION_PARSERS: dict[str, tuple[OptionParser, str] | None] = {
    "users": (parse_users, "USER:PASSWORD[,USER:PASSWORD...]"),
    "depth_levels": (int, "a whole number"),
    "heartbeat_s": (int, "whole seconds"),
    "max_clients": (int, "a whole number"),
    "seed": (int, "a whole number"),
    "bench": (parse_bool, "true or false"),
    "bench_batch": (int, "a whole number"),
    "max_buffer": (int, "a number of bytes"),
    "refuse_symbols": (
        parse_list,
        "a comma-separated list of symbols",
    ),
}


async def serve_simulator(
    host: str,
    port: int,
    symbols: list[str],
    rate: float,
    ready: Callable[[str, int], None],
    **kwargs: Any,
) -> None:
    """Run a simulator until cancelled (``SimulatorSpec.serve`` for ``hub sim``/``hub demo``).

    ``kwargs`` are ``hub sim -o KEY=VALUE`` options (text, converted here): ``users``
    (``USER:PASSWORD,...``), ``depth_levels``, ``heartbeat_s``, ``max_clients``, ``seed``,
    ``bench``, ``bench_batch``, ``max_buffer``, ``refuse_symbols``.
    """
    options = simulator_options("ninjatrader", kwargs, _OPTION_PARSERS)
    sim = NinjaTraderSimulator(
        symbols or DEFAULT_SYMBOLS,
        rate,
        host=host,
        port=port,
        **options,  # type: ignore[arg-type]
    )
    await sim.serve(ready)
