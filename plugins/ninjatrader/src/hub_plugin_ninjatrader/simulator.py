"""A loopback HubFeed server: what the NinjaScript add-on does, without NinjaTrader.

``NinjaTraderSimulator`` speaks the protocol of sdk-docs/protocols/ninjatrader.md
on 127.0.0.1 or ::1 only. Each configured symbol is a random-walk market
(best bid/ask one tick apart, ``depth_levels`` levels a side) that produces
trades, top-of-book quotes and depth updates at ``rate`` events per second;
every session gets the records of the symbols and schemas it subscribed, with
its own instrument ids and ``sequence``.

Fault injection for tests, on the simulator object: ``drop_connections()``,
``stall()``/``resume()``, ``send_malformed()``, ``skip_sequence()``,
``reject_credentials()``, ``refuse_connections()``/``accept_connections()``.

``bench=True`` replaces the market with pre-encoded batches sent as fast as
the socket takes them (well over 1.5 M records/s on loopback); only the
sequence numbers are rewritten per batch, with one big-int addition.
"""

from __future__ import annotations

import logging
import random
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from hub_core.simulation import (
    PRICE_SCALE,
    UNDEF_PRICE,
    UNDEF_TIMESTAMP,
    BackgroundServer,
    BookUpdate,
    OptionParser,
    StallSwitch,
    encode_book_update,
    encode_error,
    encode_heartbeat,
    encode_mbp1_raw,
    encode_symbol_mapping,
    encode_system,
    encode_trade_raw,
    host_port,
    parse_bool,
    parse_users,
    reset_on_close,
    simulator_options,
)
from hub_plugin_ninjatrader import codec as c

log = logging.getLogger("hub_plugin_ninjatrader.simulator")

__all__ = ["DEFAULT_SYMBOLS", "LOOPBACK_HOSTS", "NinjaTraderSimulator", "serve_simulator"]

DEFAULT_SYMBOLS: Final = ("ES", "NQ")
LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")
SERVER_NAME: Final = "hub-simulator/0.1.0"
_U32: Final = 0xFFFF_FFFF
_TICK_S: Final = 0.02
"""Market clock: events are generated in 20 ms steps."""
_OUT_LIMIT: Final = 4 * 1024 * 1024
"""Per-session bytes waiting to be sent past which market data is dropped (sequence
numbers still advance, so the client sees the gap: the protocol's slow-reader rule)."""
_HANDSHAKE_TIMEOUT_S: Final = 10.0
_BENCH_BATCH: Final = 8192
_TRADE_LOG: Final = 100_000
"""Trades remembered per symbol for ``sent_trades`` (tests compare exact values)."""

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


# -- market model ------------------------------------------------------------------------
@dataclass
class _Market:
    """One instrument's book: bid levels at ``bid - i*tick``, asks at ``bid + (i+1)*tick``."""

    symbol: str
    tick: int
    bid: int
    bid_sizes: list[int]
    ask_sizes: list[int]
    budget: float = 0.0

    @property
    def ask(self) -> int:
        return self.bid + self.tick

    def levels(self) -> list[tuple[str, int, int]]:
        """(side, price, contracts) for every level, best first."""
        out = [("B", self.bid - i * self.tick, n) for i, n in enumerate(self.bid_sizes)]
        out += [("A", self.ask + i * self.tick, n) for i, n in enumerate(self.ask_sizes)]
        return out


def _new_market(symbol: str, depth: int, rng: random.Random) -> _Market:
    root = symbol.split(" ", maxsplit=1)[0]
    first, tick = _PRICES.get(root, (100.0, 0.01))
    return _Market(
        symbol,
        _fixed(tick),
        _fixed(first),
        [rng.randint(5, 60) for _ in range(depth)],
        [rng.randint(5, 60) for _ in range(depth)],
    )


# -- sessions ---------------------------------------------------------------------------
@dataclass
class _Sub:
    instrument_id: int
    schemas: frozenset[str]


@dataclass(eq=False)
class _Session:
    sim: NinjaTraderSimulator
    stream: anyio.abc.SocketStream
    codec: c.ServerCodec = field(default_factory=c.ServerCodec)
    subs: dict[str, _Sub] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    out: bytearray = field(default_factory=bytearray)
    wake: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope | None = None
    heartbeat_s: int = 10
    session_id: str = ""
    last_send: float = 0.0
    records_sent: int = 0
    dropped: int = 0
    dropped_reported: int = 0
    out_limit: int = _OUT_LIMIT
    bench_task: bool = False
    send_lock: anyio.Lock = field(default_factory=anyio.Lock)

    # -- output ------------------------------------------------------------------
    def take_seq(self) -> int:
        self.seq = _next_seq(self.seq)
        return self.seq

    def push(self, data: bytes) -> None:
        """Queue control records (never dropped) and wake the writer."""
        self.out += data
        self.wake.set()

    def market_room(self) -> bool:
        return len(self.out) < self.out_limit

    # -- market data for this session ----------------------------------------------
    def trade(self, m: _Market, price: int, size: int, side: str, ts: int) -> None:
        sub = self.subs.get(m.symbol)
        if sub is None or "trades" not in sub.schemas:
            return
        seq = self.take_seq()
        if not self.market_room():
            self.dropped += 1
            return
        self.out += encode_trade_raw(sub.instrument_id, price, size, side, ts, ts, seq)
        self.records_sent += 1

    def quote(self, m: _Market, ts: int) -> None:
        sub = self.subs.get(m.symbol)
        if sub is None or "mbp-1" not in sub.schemas:
            return
        seq = self.take_seq()
        if not self.market_room():
            self.dropped += 1
            return
        self.out += encode_mbp1_raw(
            sub.instrument_id,
            m.bid,
            m.bid_sizes[0] * PRICE_SCALE,
            m.ask,
            m.ask_sizes[0] * PRICE_SCALE,
            ts,
            ts,
            seq,
        )
        self.records_sent += 1

    def level(
        self, m: _Market, side: str, price: int, contracts: int, action: str, ts: int
    ) -> None:
        sub = self.subs.get(m.symbol)
        if sub is None or "mbo" not in sub.schemas:
            return
        seq = self.take_seq()
        if not self.market_room():
            self.dropped += 1
            return
        update = BookUpdate(
            "", m.symbol, side, price, contracts * PRICE_SCALE, ts, ts, action, 0, seq
        )
        self.out += encode_book_update(update, sub.instrument_id)
        self.records_sent += 1

    def snapshot(self, m: _Market, schemas: frozenset[str], ts: int) -> None:
        """Current state after a subscribe: the book (clear + one add a level), then the
        quote, the order of every market event (depth first, top of book after)."""
        if "mbo" in schemas:
            self.level(m, "N", UNDEF_PRICE, 0, "R", ts)
            for side, price, n in m.levels():
                self.level(m, side, price, n, "A", ts)
        if "mbp-1" in schemas:
            self.quote(m, ts)


class NinjaTraderSimulator(BackgroundServer, StallSwitch):
    """A HubFeed server on loopback with a random-walk market and fault injection.

    Use ``async with NinjaTraderSimulator(["ES", "NQ"], rate=200) as sim:``
    then connect to ``sim.endpoint``; or ``await sim.serve()`` in a task.
    """

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
    ) -> None:
        if host == "localhost":
            host = "127.0.0.1"
        if host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"the simulator listens on loopback only ({' or '.join(LOOPBACK_HOSTS)}), "
                f"not {host!r}"
            )
        for s in symbols:
            c.validate_symbol(s)
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        if not 1 <= depth_levels <= 10:
            raise ValueError(f"depth_levels must be 1..10, got {depth_levels}")
        self.host = host
        self.port = port
        self.symbols = tuple(symbols)
        self.rate = float(rate)
        self.users = dict(users) if users else {}
        self.depth_levels = depth_levels
        self.heartbeat_s = max(1, min(heartbeat_s, c.MAX_HEARTBEAT_S))
        self.max_clients = max_clients
        self.bench = bench
        self.bench_batch = max(2, bench_batch)
        self.max_buffer = max_buffer
        """Bytes queued per session past which its market data is dropped (slow reader)."""
        self._rng = random.Random(seed)
        self._markets = {s: _new_market(s, depth_levels, self._rng) for s in self.symbols}
        self._trade_log: dict[str, deque[tuple[int, int, str]]] = {
            s: deque(maxlen=_TRADE_LOG) for s in self.symbols
        }
        self._sessions: set[_Session] = set()
        self._accepting = anyio.Event()
        self._accepting.set()
        self._listen_scope: anyio.CancelScope | None = None
        self._reject_all = False
        self._tg_cm: anyio.abc.TaskGroup | None = None
        self.connections_accepted = 0
        """TCP connections accepted so far (handshake or not)."""
        self.sessions_started = 0
        """Handshakes accepted so far."""

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """``host:port`` to connect to (IPv6 in brackets)."""
        return host_port(self.host, self.port)

    async def serve(
        self,
        ready: Callable[[str, int], None] | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until cancelled; ``ready(host, port)`` once listening."""
        async with anyio.create_task_group() as tg:
            if not self.bench:
                tg.start_soon(self._market_loop)
            first = True
            while True:
                await self._accepting.wait()
                listener = await anyio.create_tcp_listener(
                    local_host=self.host, local_port=self.port
                )
                self.port = listener.listeners[0].extra(SocketAttribute.local_port)
                with anyio.CancelScope() as scope:
                    self._listen_scope = scope
                    async with listener:
                        if first:
                            first = False
                            log.info("HubFeed simulator listening on %s", self.endpoint)
                            if ready is not None:
                                ready(self.host, self.port)
                            task_status.started()
                        await listener.serve(self._handle, tg)
                self._listen_scope = None

    # -- fault injection ---------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Reset every client connection now (TCP RST). Returns how many were dropped."""
        sessions = list(self._sessions)
        for s in sessions:
            reset_on_close(s.stream)
            if s.scope is not None:
                s.scope.cancel()
        return len(sessions)

    def send_malformed(self, kind: str = "unknown_rtype") -> None:
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
        for s in self._sessions:
            if s.session_id:
                s.push(record)

    def skip_sequence(self, n: int = 1) -> None:
        """Make every session skip ``n`` sequence numbers (the client must see a gap)."""
        for s in self._sessions:
            for _ in range(n):
                s.take_seq()

    def reject_credentials(self, on: bool = True) -> None:
        """While on, refuse every logon with ``code=auth``, even valid ones."""
        self._reject_all = on

    def refuse_connections(self) -> None:
        """Stop listening (new connections are refused); live sessions go on."""
        if self._accepting.is_set():
            self._accepting = anyio.Event()
        if self._listen_scope is not None:
            self._listen_scope.cancel()

    def accept_connections(self) -> None:
        """Listen again, on the same port."""
        self._accepting.set()

    # -- introspection -----------------------------------------------------------------------
    @property
    def session_count(self) -> int:
        """Sessions past the handshake, now."""
        return sum(1 for s in self._sessions if s.session_id)

    def subscriptions(self) -> list[set[str]]:
        """The subscribed symbols of every live session."""
        return [set(s.subs) for s in self._sessions if s.session_id]

    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """Trades the market produced for ``symbol`` (latest 100,000), in order, as
        (price, size, aggressor side) in fixed point: what a subscriber must receive."""
        return list(self._trade_log.get(symbol, ()))

    @property
    def records_sent(self) -> int:
        """Market-data records queued to live sessions (dropped ones excluded)."""
        return sum(s.records_sent for s in self._sessions)

    # -- market ------------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(_TICK_S)
            now = time.monotonic()
            dt, last = now - last, now
            if self.rate <= 0:
                continue
            live = [s for s in self._sessions if s.subs]
            if not live:
                continue
            wanted = {sym for s in live for sym in s.subs}
            ts = time.time_ns()
            for sym in wanted:
                m = self._markets.get(sym)
                if m is None:
                    continue
                m.budget += self.rate * dt
                n = int(m.budget)
                m.budget -= n
                # cap a burst after a long pause (e.g. a stalled event loop)
                for _ in range(min(n, int(self.rate) + 1)):
                    self._step(m, live, ts)
            for s in live:
                if s.out:
                    s.wake.set()

    def _step(self, m: _Market, sessions: list[_Session], ts: int) -> None:
        rng = self._rng
        r = rng.random()
        if r < 0.3:
            # a trade lifts the ask or hits the bid, then that level refills a bit
            buy = rng.random() < 0.5
            sizes = m.ask_sizes if buy else m.bid_sizes
            price = m.ask if buy else m.bid
            qty = rng.randint(1, max(1, min(5, sizes[0])))
            sizes[0] = sizes[0] - qty if sizes[0] > qty else rng.randint(5, 60)
            side = "B" if buy else "A"
            book_side = "A" if buy else "B"
            self._trade_log[m.symbol].append((price, qty * PRICE_SCALE, side))
            for s in sessions:
                s.trade(m, price, qty * PRICE_SCALE, side, ts)
                s.level(m, book_side, price, sizes[0], "M", ts)
                s.quote(m, ts)
        elif r < 0.8:
            # a resting size changes somewhere in the book
            bid_side = rng.random() < 0.5
            i = rng.randrange(len(m.bid_sizes))
            sizes = m.bid_sizes if bid_side else m.ask_sizes
            sizes[i] = rng.randint(1, 80)
            price = m.bid - i * m.tick if bid_side else m.ask + i * m.tick
            for s in sessions:
                s.level(m, "B" if bid_side else "A", price, sizes[i], "M", ts)
                if i == 0:
                    s.quote(m, ts)
        else:
            self._move(m, sessions, ts, up=rng.random() < 0.5)

    def _move(self, m: _Market, sessions: list[_Session], ts: int, up: bool) -> None:
        """Shift the ladder one tick: one level leaves each side's far or near end."""
        rng = self._rng
        if not up and m.bid <= 10 * m.tick:
            up = True  # keep prices positive
        depth = len(m.bid_sizes)
        old_bid, old_ask = m.bid, m.ask
        changes: list[tuple[str, int, int, str]] = []
        if up:
            # the best ask is taken out and becomes the new best bid
            m.bid += m.tick
            changes.append(("A", old_ask, 0, "C"))
            changes.append(("B", old_bid - (depth - 1) * m.tick, 0, "C"))
            m.ask_sizes.pop(0)
            m.ask_sizes.append(rng.randint(5, 60))
            m.bid_sizes.pop()
            m.bid_sizes.insert(0, rng.randint(1, 30))
            changes.append(("B", m.bid, m.bid_sizes[0], "A"))
            changes.append(("A", m.ask + (depth - 1) * m.tick, m.ask_sizes[-1], "A"))
        else:
            m.bid -= m.tick
            changes.append(("B", old_bid, 0, "C"))
            changes.append(("A", old_ask + (depth - 1) * m.tick, 0, "C"))
            m.bid_sizes.pop(0)
            m.bid_sizes.append(rng.randint(5, 60))
            m.ask_sizes.pop()
            m.ask_sizes.insert(0, rng.randint(1, 30))
            changes.append(("A", m.ask, m.ask_sizes[0], "A"))
            changes.append(("B", m.bid - (depth - 1) * m.tick, m.bid_sizes[-1], "A"))
        for s in sessions:
            for side, price, n, action in changes:
                s.level(m, side, price, n, action, ts)
            s.quote(m, ts)

    # -- one connection ------------------------------------------------------------------------
    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        self.connections_accepted += 1
        session = _Session(self, stream, heartbeat_s=self.heartbeat_s, out_limit=self.max_buffer)
        self._sessions.add(session)
        try:
            with anyio.CancelScope() as scope:
                session.scope = scope
                await self._run_session(session)
        except* (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
            c.CodecError,
        ) as group:
            # the client went away or broke the protocol: end this session only
            log.debug("simulator session ended: %r", group.exceptions)
        finally:
            self._sessions.discard(session)
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _send(self, session: _Session, data: bytes = b"") -> None:
        """Send what is queued in ``session.out``, then ``data``.

        The queue is read under the send lock, so whoever sends next (the writer,
        the bench blaster, an error path) also sends every control record queued
        before it: a symbol mapping always precedes the instrument's data.
        """
        await self.wait_while_stalled()
        async with session.send_lock:
            if session.out:
                data = bytes(session.out) + data
                session.out.clear()
            if data:
                await session.stream.send(data)
        session.last_send = time.monotonic()

    async def _run_session(self, session: _Session) -> None:
        codec = session.codec
        greeting = c.Greeting(c.PROTOCOL_VERSION, codec.new_cram(), SERVER_NAME)
        await self._send(session, codec.send(greeting))
        with anyio.move_on_after(_HANDSHAKE_TIMEOUT_S) as timeout:
            hello = await self._receive_hello(session)
        if timeout.cancelled_caught or hello is None:
            return
        reject = self._check_hello(session, hello)
        if reject is not None:
            await self._send(session, codec.send(reject))
            return
        if hello.heartbeat_s is not None:
            session.heartbeat_s = hello.heartbeat_s
        session.session_id = secrets.token_hex(8)
        self.sessions_started += 1
        await self._send(
            session,
            codec.send(c.HandshakeAccepted(session.session_id, session.heartbeat_s)),
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._writer, session)
            await self._reader(session, tg)
            tg.cancel_scope.cancel()

    async def _receive_hello(self, session: _Session) -> c.Hello | None:
        codec = session.codec
        while True:
            try:
                event = codec.next_event()
            except c.CodecError as exc:
                await self._send(
                    session, codec.send(c.HandshakeRejected(c.REJECT_BAD_REQUEST, str(exc)))
                )
                return None
            if isinstance(event, c.Hello):
                return event
            if isinstance(event, c.ConnectionClosed):
                return None
            data = await self._receive(session)
            try:
                codec.receive_data(data)
            except c.CodecError as exc:
                await self._send(
                    session, codec.send(c.HandshakeRejected(c.REJECT_BAD_REQUEST, str(exc)))
                )
                return None

    async def _receive(self, session: _Session) -> bytes:
        try:
            return await session.stream.receive(65536)
        except anyio.EndOfStream:
            return b""

    def _check_hello(self, session: _Session, hello: c.Hello) -> c.HandshakeRejected | None:
        if hello.version != c.PROTOCOL_VERSION:
            return c.HandshakeRejected(
                c.REJECT_VERSION,
                f"version {hello.version} is not supported; this server speaks "
                f"{c.PROTOCOL_VERSION}",
            )
        if self._reject_all:
            return c.HandshakeRejected(c.REJECT_AUTH, "credentials refused")
        if self.users:
            password = self.users.get(hello.user or "")
            if password is None or not session.codec.verify(hello, password):
                return c.HandshakeRejected(c.REJECT_AUTH, "unknown user or wrong password")
        if self.session_count >= self.max_clients:
            return c.HandshakeRejected(
                c.REJECT_LIMIT, f"{self.max_clients} clients already connected"
            )
        return None

    async def _reader(self, session: _Session, tg: anyio.abc.TaskGroup) -> None:
        codec = session.codec
        while True:
            try:
                event = codec.next_event()
                if isinstance(event, c.NeedData):
                    codec.receive_data(await self._receive(session))
                    continue
            except c.LineTooLong as exc:
                # the protocol's only fatal request error: say why, then close
                text = c.request_error_text("", 0, str(exc))
                await self._send(
                    session, encode_error(text, c.ERR_INVALID_SUBSCRIPTION, time.time_ns())
                )
                return
            if isinstance(event, c.ConnectionClosed):
                return
            self._on_request(session, event, tg)

    def _on_request(
        self,
        session: _Session,
        event: c.Subscribe | c.Unsubscribe | c.Ping | c.BadRequest | c.Hello,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        ts = time.time_ns()
        if isinstance(event, c.Ping):
            session.push(encode_system(c.pong_text(event.req_id), c.SYS_HEARTBEAT, ts))
        elif isinstance(event, c.Subscribe):
            self._subscribe(session, event, ts, tg)
        elif isinstance(event, c.Unsubscribe):
            removed = 0
            for sym in event.symbols:
                if session.subs.pop(sym, None) is not None:
                    removed += 1
            session.push(
                encode_system(
                    c.unsubscribe_ack_text(event.req_id, removed), c.SYS_UNSUBSCRIBE_ACK, ts
                )
            )
        elif isinstance(event, c.BadRequest):
            text = c.request_error_text(event.op, event.req_id, event.reason)
            session.push(encode_error(text, c.ERR_INVALID_SUBSCRIPTION, ts))

    def _subscribe(
        self, session: _Session, event: c.Subscribe, ts: int, tg: anyio.abc.TaskGroup
    ) -> None:
        accepted: list[str] = []
        rejected = 0
        schemas = frozenset(event.schemas)
        for sym in dict.fromkeys(event.symbols):
            if sym not in self._markets:
                rejected += 1
                text = c.symbol_error_text("subscribe", event.req_id, sym, "unknown instrument")
                session.push(encode_error(text, c.ERR_SYMBOL_RESOLUTION_FAILED, ts))
                continue
            iid = session.ids.setdefault(sym, len(session.ids) + 1)
            old = session.subs.get(sym)
            session.subs[sym] = _Sub(iid, schemas | old.schemas if old else schemas)
            session.push(encode_symbol_mapping(iid, sym, ts, ts, UNDEF_TIMESTAMP))
            accepted.append(sym)
        session.push(
            encode_system(
                c.subscribe_ack_text(event.req_id, len(accepted), rejected),
                c.SYS_SUBSCRIPTION_ACK,
                ts,
            )
        )
        if self.bench:
            if accepted and not session.bench_task:
                session.bench_task = True
                tg.start_soon(self._blast, session)
            return
        for sym in accepted:
            session.snapshot(self._markets[sym], schemas, ts)

    async def _writer(self, session: _Session) -> None:
        session.last_send = time.monotonic()
        while True:
            idle = time.monotonic() - session.last_send
            with anyio.move_on_after(max(0.0, session.heartbeat_s - idle)):
                await session.wake.wait()
            session.wake = anyio.Event()
            await self.wait_while_stalled()
            if session.dropped > session.dropped_reported:
                # the protocol's optional slow-reader warning (system code 2)
                text = f"op=slow_reader|dropped={session.dropped - session.dropped_reported}"
                session.dropped_reported = session.dropped
                session.out += encode_system(text, c.SYS_SLOW_READER_WARNING, time.time_ns())
            if session.out:
                await self._send(session)
            elif time.monotonic() - session.last_send >= session.heartbeat_s:
                await self._send(session, encode_heartbeat(time.time_ns()))

    # -- bench mode ------------------------------------------------------------------------------
    async def _blast(self, session: _Session) -> None:
        """Send pre-encoded trade/quote batches as fast as the socket takes them."""
        symbols = [s for s in session.subs if s in self._markets]
        n = self.bench_batch
        ts = time.time_ns()
        template = bytearray()
        mask = bytearray()
        for i in range(n):
            m = self._markets[symbols[(i // 2) % len(symbols)]]
            iid = session.subs[m.symbol].instrument_id
            if i % 2 == 0:
                rec = encode_trade_raw(iid, m.ask, PRICE_SCALE, "B", ts, ts, i)
            else:
                rec = encode_mbp1_raw(
                    iid, m.bid, 10 * PRICE_SCALE, m.ask, 12 * PRICE_SCALE, ts, ts, i
                )
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
            await self._send(session, payload)


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
    ``bench``, ``bench_batch``, ``max_buffer``.
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
