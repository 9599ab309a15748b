"""A loopback FIX acceptor with a random-walk market: ``hub sim fix``.

``FixSimulator`` speaks the session layer of ``hub_plugin_fix.session`` (the
same sans-I/O code, as acceptor) on 127.0.0.1 or ::1 only. It accepts a Logon
addressed to its CompID (``VENUE`` by default, what ``FixOptions`` targets by
default), keeps each counterparty's sequence numbers in memory between
connections (a Logon with 141=Y resets them) and the market data it sent to each
(answering a ResendRequest with the real messages, PossDupFlag=Y, and a gap fill
over administrative ones), answers a MarketDataRequest
(35=V, 263=1) with a snapshot (35=W) and then streams incremental refreshes
(35=X): trades (269=2 with AggressorSide 2446) and bid/offer levels (269=0/1)
of a 5-level book, for the entry types asked; unknown symbols get a
MarketDataRequestReject (35=Y, 281=0); 263=2 stops the stream.

Fault injection, on the simulator object: ``drop_connections()`` (TCP reset),
``stall()``/``resume()`` (silence, answers included), ``send_malformed()`` (a
message with a wrong CheckSum, or garbage bytes), ``skip_sequence()`` (the
next message skips a MsgSeqNum: lost for good, a resend gap-fills it),
``withhold()`` (market data numbered and kept but not sent: a resend brings it),
``logout_all()`` (a Logout from the venue),
``reject_logons()`` (answer every Logon with a Logout), ``stop_reading()``/
``resume_reading()`` (the venue reads nothing, so the client's sends block).

With an ``ssl_context`` (a server context holding the venue's certificate) it is a
FIX-over-TLS acceptor (``fixs://``): each connection does the TLS handshake first;
one that fails (a plain-TCP client, a client that does not trust the certificate) is
counted in ``tls_failures`` and closed, and the simulator goes on serving.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from hub_core.plugin import PRICE_SCALE, ExchangeConfig, format_fixed
from hub_core.simulation import BackgroundServer, StallSwitch, host_port, reset_on_close
from hub_plugin_fix import session as s
from hub_plugin_fix.codec import Header, MsgType, Tag
from hub_plugin_fix.scanner import Frame
from hub_plugin_fix.store import MemoryStore

log = logging.getLogger("hub_plugin_fix.simulator")

__all__ = [
    "DEFAULT_COMP_ID",
    "DEFAULT_SYMBOLS",
    "LOOPBACK_HOSTS",
    "FixSimulator",
    "demo_config",
    "serve_simulator",
]

DEFAULT_SYMBOLS: Final = ("ES", "NQ")
DEFAULT_COMP_ID: Final = "VENUE"
LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")
_TICK_S: Final = 0.02
"""Market clock: events are generated in 20 ms steps."""
_TRADE_LOG: Final = 100_000
_LOGON_TIMEOUT_S: Final = 10.0
_OUT_LIMIT: Final = 4 * 1024 * 1024
"""Bytes queued for one client past which market data for it is skipped."""

# known roots: (first bid, tick size) in display units
_PRICES: Final = {"ES": (5000.0, 0.25), "NQ": (18000.0, 0.25), "CL": (70.0, 0.01)}

MALFORMED_KINDS: Final = ("checksum", "garbage", "body_length")
_FIX50SP2: Final = "9"
"""ApplVerID of FIX.5.0SP2: the only application version spoken under FIXT.1.1."""


def _fixed(value: float) -> int:
    return round(value * PRICE_SCALE)


def _px(value: int) -> str:
    return format_fixed(value)


@dataclass
class _Market:
    """One instrument: bid levels at ``bid - i*tick``, asks at ``bid + (i+1)*tick``."""

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
        """(entry type, price, size in contracts) of every level, best first."""
        out = [("0", self.bid - i * self.tick, n) for i, n in enumerate(self.bid_sizes)]
        out += [("1", self.ask + i * self.tick, n) for i, n in enumerate(self.ask_sizes)]
        return out


@dataclass
class _Entry:
    """One MDIncGrp entry: (action, type, price, contracts, aggressor)."""

    action: str
    entry_type: str
    price: int
    size: int
    aggressor: str = ""


@dataclass
class _Sub:
    req_id: str
    entry_types: frozenset[str]


@dataclass(eq=False)
class _Client:
    sim: FixSimulator
    stream: anyio.abc.ByteStream
    session: s.FixSession
    subs: dict[str, _Sub] = field(default_factory=dict)
    out: bytearray = field(default_factory=bytearray)
    wake: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope | None = None
    logged_on: bool = False
    closing: bool = False
    finishing: bool = False
    """The reader is done: the writer sends what is queued (a Logout answer) and ends."""
    writer_done: anyio.Event = field(default_factory=anyio.Event)
    sending: bool = False
    """The writer is inside ``stream.send`` (it blocks while the client does not read)."""
    skipped: int = 0
    withhold: int = 0
    """Market-data messages still to withhold (numbered and kept, not sent)."""

    def drain_session(self) -> None:
        """Move the session's automatic answers into ``out``, keeping sequence order."""
        data = self.session.data_to_send()
        if data:
            self.out += data
            self.wake.set()

    def push(self, data: bytes) -> None:
        self.drain_session()
        self.out += data
        self.wake.set()


class FixSimulator(BackgroundServer, StallSwitch):
    """A FIX acceptor on loopback with a random-walk market and fault injection.

    ``async with FixSimulator(["ES", "NQ"], rate=200) as sim:`` then connect to
    ``sim.endpoint`` (``fix://127.0.0.1:<port>``, ``fixs://`` with an ``ssl_context``);
    or ``await sim.serve()``.
    """

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        rate: float = 100.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        comp_id: str = DEFAULT_COMP_ID,
        begin_string: str = "FIX.4.4",
        users: Mapping[str, str] | None = None,
        depth_levels: int = 5,
        seed: int | None = None,
        max_clients: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if host == "localhost":
            host = "127.0.0.1"
        if host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"the simulator listens on loopback only ({' or '.join(LOOPBACK_HOSTS)}), "
                f"not {host!r}"
            )
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        if not 1 <= depth_levels <= 10:
            raise ValueError(f"depth_levels must be 1..10, got {depth_levels}")
        self.host = host
        self.port = port
        self.symbols = tuple(symbols)
        self.rate = float(rate)
        self.comp_id = comp_id
        self.begin_string = begin_string
        self.users = dict(users) if users else {}
        self.depth_levels = depth_levels
        self.max_clients = max_clients
        self.ssl_context = ssl_context
        """Server TLS context: FIX over TLS when set (``fixs://``), plain TCP when None."""
        self._rng = random.Random(seed)
        self._markets = {sym: self._new_market(sym) for sym in self.symbols}
        self._trade_log: dict[str, deque[tuple[int, int, str]]] = {
            sym: deque(maxlen=_TRADE_LOG) for sym in self.symbols
        }
        self._stores: dict[str, MemoryStore] = {}
        self._kept: dict[str, dict[int, tuple[bytes, int]]] = {}
        """Market data sent to each counterparty (its session's resend store)."""
        self._clients: set[_Client] = set()
        self._reject_logons = ""
        self._tg_cm: anyio.abc.TaskGroup | None = None
        self.connections_accepted = 0
        self.tls_failures: list[str] = []
        """Every TLS handshake that failed, as ``ExceptionType: reason``."""
        self.logons: list[tuple[str, int, bool]] = []
        """Every Logon accepted: (SenderCompID, its MsgSeqNum, ResetSeqNumFlag)."""
        self.appl_ver_ids: list[str | None] = []
        """DefaultApplVerID (1137) of every Logon accepted (None when absent)."""
        self.logouts: list[str] = []
        """The Text (58) of every Logout a client sent ("" without one)."""
        self.resend_requests: list[tuple[int, int]] = []
        """Every ResendRequest received: (BeginSeqNo, EndSeqNo)."""
        self.requests: list[tuple[str, str, str]] = []
        """Every MarketDataRequest: (MDReqID, SubscriptionRequestType, Symbol)."""
        self.withheld = 0
        """Market-data messages withheld by ``withhold()`` so far."""
        self.inbound_gaps: list[tuple[int, int]] = []
        """Every sequence gap seen in a client's messages: (expected, received)."""
        self.session_failures: list[str] = []
        """The reason of every client session that failed (MsgSeqNum too low, ...)."""
        self._deaf: anyio.Event | None = None

    def _new_market(self, symbol: str) -> _Market:
        rng = self._rng
        root = symbol.split(" ", maxsplit=1)[0]
        first, tick = _PRICES.get(root, (100.0, 0.01))
        n = self.depth_levels
        return _Market(
            symbol,
            _fixed(tick),
            _fixed(first),
            [rng.randint(5, 60) for _ in range(n)],
            [rng.randint(5, 60) for _ in range(n)],
        )

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """``fix://host:port`` to connect to (``fixs://`` over TLS; IPv6 in brackets)."""
        scheme = "fix" if self.ssl_context is None else "fixs"
        return f"{scheme}://{host_port(self.host, self.port)}"

    async def serve(
        self,
        ready: Callable[[str, int], None] | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until cancelled; ``ready(host, port)`` once listening."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = listener.listeners[0].extra(SocketAttribute.local_port)
        async with anyio.create_task_group() as tg, listener:
            tg.start_soon(self._market_loop)
            log.info("FIX simulator listening on %s as %s", self.endpoint, self.comp_id)
            if ready is not None:
                ready(self.host, self.port)
            task_status.started()
            await listener.serve(self._handle, tg)

    # -- fault injection -------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Reset every client connection now (TCP RST). Returns how many were dropped."""
        clients = list(self._clients)
        for cl in clients:
            reset_on_close(cl.stream)
            if cl.scope is not None:
                cl.scope.cancel()
        return len(clients)

    def send_malformed(self, kind: str = "checksum") -> None:
        """Send one broken message to every logged-on client.

        ``"checksum"``: a Heartbeat whose CheckSum is wrong (it used a sequence number,
        so the client then sees a gap); ``"body_length"``: a BodyLength that misses
        the CheckSum; ``"garbage"``: bytes that are not FIX at all.
        """
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r} (one of {MALFORMED_KINDS})")
        for cl in self._clients:
            if not cl.logged_on:
                continue
            if kind == "garbage":
                cl.push(b"\x00garbage\xff not FIX\x01")
                continue
            good = cl.session.heartbeat()
            if kind == "checksum":
                digits = int(good[-4:-1])
                bad = good[:-4] + b"%03d" % ((digits + 1) % 256) + b"\x01"
            else:
                # 9=<n> grows by one: BodyLength now points past the CheckSum's start
                head, _, rest = good.partition(b"\x019=")
                n, _, body = rest.partition(b"\x01")
                bad = head + b"\x019=" + str(int(n) + 1).encode() + b"\x01" + body
            cl.push(bad)

    def skip_sequence(self, n: int = 1) -> None:
        """Every client's next message skips ``n`` MsgSeqNum (as if messages were lost)."""
        for cl in self._clients:
            if cl.logged_on:
                cl.drain_session()
                cl.session.store.next_sender += n

    def withhold(self, n: int = 1) -> None:
        """Every client's next ``n`` market-data messages are numbered and kept but not
        sent (as if lost on the way): the client sees a gap and asks for a resend, which
        gets the real messages (PossDupFlag=Y, OrigSendingTime)."""
        for cl in self._clients:
            if cl.logged_on:
                cl.withhold += n

    def logout_all(self, text: str = "simulator logout") -> None:
        """Log every client out (35=5 from the venue's side)."""
        for cl in self._clients:
            if cl.logged_on and cl.session.state == s.State.ACTIVE:
                cl.push(cl.session.logout(text))

    def stop_reading(self) -> None:
        """Read nothing from any client until ``resume_reading()`` (its sends then
        block once the socket buffers fill), while market data goes on."""
        if self._deaf is None:
            self._deaf = anyio.Event()

    def resume_reading(self) -> None:
        """End ``stop_reading()``."""
        event, self._deaf = self._deaf, None
        if event is not None:
            event.set()

    def reject_logons(self, text: str = "logon refused by the simulator") -> None:
        """Answer every Logon with a Logout carrying ``text`` ("" turns it off)."""
        self._reject_logons = text

    # -- introspection -------------------------------------------------------------------
    @property
    def session_count(self) -> int:
        """Logged-on clients, now."""
        return sum(1 for cl in self._clients if cl.logged_on)

    def subscriptions(self) -> list[set[str]]:
        """The subscribed symbols of every logged-on client."""
        return [set(cl.subs) for cl in self._clients if cl.logged_on]

    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """Trades the market produced for ``symbol`` (latest 100,000), in order, as
        (price, size, aggressor side) in fixed point: what a subscriber must receive."""
        return list(self._trade_log.get(symbol, ()))

    def blocked_writers(self) -> int:
        """Clients whose writer is inside a send that has not completed (the client
        stopped reading and the socket buffers are full), with more data queued."""
        return sum(1 for cl in self._clients if cl.sending and cl.out)

    def store_of(self, sender_comp_id: str) -> MemoryStore | None:
        """The sequence numbers kept for a counterparty."""
        return self._stores.get(sender_comp_id)

    # -- market ---------------------------------------------------------------------------
    async def _market_loop(self) -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(_TICK_S)
            now = time.monotonic()
            dt, last = now - last, now
            if self.rate <= 0 or self.stalled:
                continue
            live = [cl for cl in self._clients if cl.logged_on and cl.subs]
            if not live:
                continue
            wanted = {sym for cl in live for sym in cl.subs}
            for sym in wanted:
                m = self._markets.get(sym)
                if m is None:
                    continue
                m.budget += self.rate * dt
                n = int(m.budget)
                m.budget -= n
                # cap a burst after a long pause (e.g. a stalled event loop)
                for _ in range(min(n, int(self.rate) + 1)):
                    entries = self._step(m)
                    for cl in live:
                        self._send_incremental(cl, m, entries)

    def _step(self, m: _Market) -> list[_Entry]:
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
            self._trade_log[m.symbol].append((price, qty * PRICE_SCALE, side))
            return [
                _Entry("0", "2", price, qty, "1" if buy else "2"),
                _Entry("1", "1" if buy else "0", price, sizes[0]),
            ]
        if r < 0.8:
            bid_side = rng.random() < 0.5
            i = rng.randrange(len(m.bid_sizes))
            sizes = m.bid_sizes if bid_side else m.ask_sizes
            sizes[i] = rng.randint(1, 80)
            price = m.bid - i * m.tick if bid_side else m.ask + i * m.tick
            return [_Entry("1", "0" if bid_side else "1", price, sizes[i])]
        return self._move(m, up=rng.random() < 0.5)

    def _move(self, m: _Market, up: bool) -> list[_Entry]:
        """Shift the ladder one tick: one level leaves each side, one arrives."""
        rng = self._rng
        if not up and m.bid <= 10 * m.tick:
            up = True  # keep prices positive
        depth = len(m.bid_sizes)
        old_bid, old_ask = m.bid, m.ask
        if up:
            m.bid += m.tick
            m.ask_sizes.pop(0)
            m.ask_sizes.append(rng.randint(5, 60))
            m.bid_sizes.pop()
            m.bid_sizes.insert(0, rng.randint(1, 30))
            return [
                _Entry("2", "1", old_ask, 0),
                _Entry("2", "0", old_bid - (depth - 1) * m.tick, 0),
                _Entry("0", "0", m.bid, m.bid_sizes[0]),
                _Entry("0", "1", m.ask + (depth - 1) * m.tick, m.ask_sizes[-1]),
            ]
        m.bid -= m.tick
        m.bid_sizes.pop(0)
        m.bid_sizes.append(rng.randint(5, 60))
        m.ask_sizes.pop()
        m.ask_sizes.insert(0, rng.randint(1, 30))
        return [
            _Entry("2", "0", old_bid, 0),
            _Entry("2", "1", old_ask + (depth - 1) * m.tick, 0),
            _Entry("0", "1", m.ask, m.ask_sizes[0]),
            _Entry("0", "0", m.bid - (depth - 1) * m.tick, m.bid_sizes[-1]),
        ]

    # -- encoding -------------------------------------------------------------------------
    def _app_message(self, cl: _Client, msg_type: str) -> Any:
        """A new application message; under FIXT.1.1 its header names the application
        version (ApplVerID 1128 = 9, FIX.5.0SP2), as venues commonly do."""
        msg = cl.session.new_message(msg_type)
        if self.begin_string == "FIXT.1.1":
            msg.append_pair(Tag.APPL_VER_ID, _FIX50SP2, header=True)
        return msg

    def _send_incremental(self, cl: _Client, m: _Market, entries: list[_Entry]) -> None:
        sub = cl.subs.get(m.symbol)
        if sub is None or cl.session.state != s.State.ACTIVE:
            return
        wanted = [e for e in entries if e.entry_type in sub.entry_types]
        if not wanted:
            return
        if len(cl.out) > _OUT_LIMIT:
            cl.skipped += 1  # a reader that stopped reading: its sequence numbers jump
            cl.session.store.next_sender += 1
            return
        msg = self._app_message(cl, MsgType.MARKET_DATA_INCREMENTAL)
        msg.append_pair(Tag.MD_REQ_ID, sub.req_id)
        msg.append_pair(Tag.NO_MD_ENTRIES, len(wanted))
        for e in wanted:
            msg.append_pair(Tag.MD_UPDATE_ACTION, e.action)
            msg.append_pair(Tag.MD_ENTRY_TYPE, e.entry_type)
            msg.append_pair(Tag.SYMBOL, m.symbol)
            msg.append_pair(Tag.MD_ENTRY_PX, _px(e.price))
            if e.action != "2":
                msg.append_pair(Tag.MD_ENTRY_SIZE, e.size)
            if e.aggressor:
                msg.append_pair(Tag.AGGRESSOR_SIDE, e.aggressor)
        data = cl.session.encode_app(msg)  # kept: a ResendRequest gets it again
        if cl.withhold > 0:
            cl.withhold -= 1  # made and numbered, never sent: the client sees a gap
            self.withheld += 1
            return
        cl.push(data)

    def _send_snapshot(self, cl: _Client, m: _Market, sub: _Sub) -> None:
        levels = [lv for lv in m.levels() if lv[0] in sub.entry_types]
        msg = self._app_message(cl, MsgType.MARKET_DATA_SNAPSHOT)
        msg.append_pair(Tag.MD_REQ_ID, sub.req_id)
        msg.append_pair(Tag.SYMBOL, m.symbol)
        msg.append_pair(Tag.NO_MD_ENTRIES, len(levels))
        for entry_type, price, size in levels:
            msg.append_pair(Tag.MD_ENTRY_TYPE, entry_type)
            msg.append_pair(Tag.MD_ENTRY_PX, _px(price))
            msg.append_pair(Tag.MD_ENTRY_SIZE, size)
        cl.push(cl.session.encode_app(msg))

    def _reject_request(self, cl: _Client, req_id: str, reason: str, text: str) -> None:
        msg = self._app_message(cl, MsgType.MARKET_DATA_REQUEST_REJECT)
        msg.append_pair(Tag.MD_REQ_ID, req_id)
        msg.append_pair(Tag.MD_REQ_REJ_REASON, reason)
        msg.append_pair(Tag.TEXT, text)
        cl.push(cl.session.encode_app(msg))

    # -- one connection ------------------------------------------------------------------
    async def _tls_handshake(self, tcp: anyio.abc.SocketStream) -> anyio.abc.ByteStream | None:
        """The TLS server handshake on a new connection; None (and closed) if it fails."""
        assert self.ssl_context is not None
        try:
            with anyio.fail_after(_LOGON_TIMEOUT_S):
                return await TLSStream.wrap(
                    tcp, server_side=True, ssl_context=self.ssl_context, standard_compatible=False
                )
        except (
            ssl.SSLError,
            OSError,
            TimeoutError,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
        ) as exc:
            if isinstance(exc, ssl.SSLError):
                reason = exc.reason or str(exc)
            elif isinstance(exc, anyio.EndOfStream | anyio.BrokenResourceError):
                reason = "the client closed the connection during the handshake"
            elif isinstance(exc, TimeoutError):
                reason = f"no handshake within {_LOGON_TIMEOUT_S:g}s"
            else:
                reason = str(exc)
            self.tls_failures.append(f"{type(exc).__name__}: {reason}")
            log.info("simulator: TLS handshake failed: %s", self.tls_failures[-1])
            await anyio.aclose_forcefully(tcp)
            return None

    async def _handle(self, tcp: anyio.abc.SocketStream) -> None:
        self.connections_accepted += 1
        stream: anyio.abc.ByteStream = tcp
        if self.ssl_context is not None:
            wrapped = await self._tls_handshake(tcp)
            if wrapped is None:
                return
            stream = wrapped
        session = s.FixSession(Header(self.begin_string, self.comp_id, ""), role="acceptor")
        cl = _Client(self, stream, session)
        self._clients.add(cl)
        try:
            with anyio.CancelScope() as scope:
                cl.scope = scope
                async with anyio.create_task_group() as tg:
                    # the writer task is the only one that ever writes to this stream:
                    # a heartbeat, market data and an answer due at once while the
                    # socket blocks must queue, not race (anyio raises BusyResourceError
                    # on a second concurrent send)
                    tg.start_soon(self._writer, cl)
                    await self._reader(cl)
                    await self._finish(cl)
                    tg.cancel_scope.cancel()
        except* (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
        ) as group:
            # the client went away: end this session only
            log.debug("simulator session ended: %r", group.exceptions)
        except* Exception as group:
            # whatever goes wrong in one session ends that session, never the venue
            log.error(
                "simulator session failed: %r", group.exceptions, exc_info=group.exceptions[0]
            )
        finally:
            self._clients.discard(cl)
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _finish(self, cl: _Client) -> None:
        """Let the writer send what is queued (a Logout answer) and end, for up to a
        second (a client that stopped reading gets no more)."""
        cl.drain_session()
        cl.finishing = True
        cl.wake.set()
        with anyio.move_on_after(1):
            await cl.writer_done.wait()

    async def _reader(self, cl: _Client) -> None:
        session = cl.session
        with anyio.move_on_after(_LOGON_TIMEOUT_S) as logon_wait:
            while not cl.logged_on and not cl.closing:
                if not await self._read_once(cl):
                    return
        if logon_wait.cancelled_caught:
            return
        while not cl.closing:
            if not await self._read_once(cl):
                return
            if session.state in (s.State.CLOSED, s.State.FAILED):
                return

    async def _read_once(self, cl: _Client) -> bool:
        """One read and every event it gives; False when the session is over."""
        session = cl.session
        while (deaf := self._deaf) is not None:
            await deaf.wait()
        try:
            data = await cl.stream.receive(65536)
        except anyio.EndOfStream:
            data = b""
        session.receive_data(data)
        while True:
            event = session.next_event()
            if isinstance(event, s.NeedData):
                break
            if isinstance(event, s.ConnectionClosed):
                return False
            self._on_event(cl, event)
        if session.resend_requests:
            self.resend_requests.extend(session.resend_requests)
            session.resend_requests.clear()
        cl.drain_session()
        return not cl.closing

    def _on_event(self, cl: _Client, event: s.Event) -> None:
        if isinstance(event, s.LogonRequested):
            self._on_logon(cl, event)
        elif isinstance(event, s.AppMessage):
            frame = event.frame
            if frame.msg_type == MsgType.MARKET_DATA_REQUEST:
                self._on_request(cl, frame)
            else:
                log.debug("simulator: ignoring 35=%s", frame.msg_type)
        elif isinstance(event, s.LoggedOut | s.SessionFailed):
            if isinstance(event, s.LoggedOut) and event.by_peer:
                self.logouts.append(event.text)
            if isinstance(event, s.SessionFailed):
                self.session_failures.append(event.reason)
            cl.logged_on = False
            cl.closing = True
            log.debug("simulator session over: %r", event)
        elif isinstance(event, s.SequenceGap):
            self.inbound_gaps.append((event.expected, event.received))
            log.debug("simulator: inbound gap %r", event)
        elif isinstance(event, s.Malformed):
            log.warning("simulator: malformed message from client: %s", event.reason)

    def _on_logon(self, cl: _Client, req: s.LogonRequested) -> None:
        session = cl.session
        refusal = ""
        if self._reject_logons:
            refusal = self._reject_logons
        elif req.target_comp_id != self.comp_id:
            refusal = (
                f"unknown TargetCompID {req.target_comp_id!r} (this venue is {self.comp_id!r})"
            )
        elif self.users and (
            req.password is None or self.users.get(req.username or "") != req.password
        ):
            refusal = "unknown username or wrong password"
        elif req.heartbeat_s <= 0:
            refusal = "HeartBtInt (108) must be positive"
        elif self.begin_string == "FIXT.1.1" and req.default_appl_ver_id != _FIX50SP2:
            refusal = (
                f"DefaultApplVerID (1137) must be {_FIX50SP2} (FIX.5.0SP2) on FIXT.1.1, "
                f"got {req.default_appl_ver_id!r}"
            )
        elif self.session_count >= self.max_clients:
            refusal = f"{self.max_clients} clients already logged on"
        if refusal:
            cl.push(session.reject_logon(refusal))
            cl.closing = True
            return
        store = self._stores.setdefault(req.sender_comp_id, MemoryStore())
        kept = self._kept.setdefault(req.sender_comp_id, {})
        cl.push(session.accept_logon(store, kept))
        if session.state == s.State.ACTIVE:
            cl.logged_on = True
            self.logons.append((req.sender_comp_id, session.expected_seq - 1, req.reset))
            self.appl_ver_ids.append(req.default_appl_ver_id)
        else:
            cl.closing = True  # refused inside accept_logon (sequence number too low)

    def _on_request(self, cl: _Client, f: Frame) -> None:
        req_id = f.text(Tag.MD_REQ_ID)
        kind = f.text(Tag.SUBSCRIPTION_REQUEST_TYPE)
        fields = f.fields()
        symbols = [v.decode("latin-1") for t, v in fields if t == Tag.SYMBOL]
        types = frozenset(v.decode("latin-1") for t, v in fields if t == Tag.MD_ENTRY_TYPE)
        self.requests.append((req_id, kind, ",".join(symbols)))
        if kind == "2":
            for sym in [sym for sym, sub in cl.subs.items() if sub.req_id == req_id]:
                del cl.subs[sym]
            return
        if kind != "1":
            self._reject_request(cl, req_id, "4", f"SubscriptionRequestType {kind!r}")
            return
        if not symbols:
            self._reject_request(cl, req_id, "0", "no Symbol (55) in the request")
            return
        unsupported = sorted(types - {"0", "1", "2"})
        if unsupported:
            self._reject_request(cl, req_id, "8", f"MDEntryType {','.join(unsupported)}")
            return
        for sym in symbols:
            m = self._markets.get(sym)
            if m is None:
                self._reject_request(cl, req_id, "0", f"unknown symbol {sym!r}")
                continue
            sub = _Sub(req_id, types or frozenset({"0", "1", "2"}))
            cl.subs[sym] = sub
            self._send_snapshot(cl, m, sub)

    async def _writer(self, cl: _Client) -> None:
        """The one task that writes to the client's stream: everything else appends to
        ``cl.out`` (synchronously, so sequence order is the order of the bytes)."""
        try:
            await self._write_loop(cl)
        finally:
            cl.writer_done.set()

    async def _write_loop(self, cl: _Client) -> None:
        session = cl.session
        while True:
            if not cl.finishing:
                with anyio.move_on_after(session.next_timeout()):
                    await cl.wake.wait()
            cl.wake = anyio.Event()
            if cl.finishing and self.stalled:
                return  # a stalled venue says nothing, not even goodbye
            await self.wait_while_stalled()
            if cl.logged_on and not cl.finishing:
                session.tick()
            cl.drain_session()
            if cl.out:
                data = bytes(cl.out)
                cl.out.clear()
                cl.sending = True
                try:
                    await cl.stream.send(data)
                finally:
                    cl.sending = False
            if cl.finishing:
                if not cl.out:
                    return
                continue  # appended while we were sending
            if session.state == s.State.FAILED:
                # the client went silent (no answer to our TestRequest): hang up
                if cl.scope is not None:
                    cl.scope.cancel()
                return


# -- SimulatorSpec ------------------------------------------------------------------------
async def serve_simulator(
    host: str,
    port: int,
    symbols: list[str],
    rate: float,
    ready: Callable[[str, int], None],
    **kwargs: Any,
) -> None:
    """Run a simulator until cancelled (``SimulatorSpec.serve`` for ``hub sim``/``hub demo``)."""
    sim = FixSimulator(symbols or DEFAULT_SYMBOLS, rate, host=host, port=port, **kwargs)
    await sim.serve(ready)


def demo_config(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    """The connection ``hub demo`` makes to a simulator at ``host:port``."""
    url = endpoint if "://" in endpoint else f"fix://{endpoint}"
    return ExchangeConfig.fix(
        "fix",
        url,
        symbols=list(symbols),
        options={
            "sender_comp_id": "HUB",
            "target_comp_id": DEFAULT_COMP_ID,
            "heartbeat_interval_s": 5,
            # a fresh simulator knows no sequence numbers: start the session at 1
            "reset_on_logon": True,
        },
    )
