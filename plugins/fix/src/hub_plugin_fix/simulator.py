"""A loopback FIX acceptor with a random-walk market: ``hub sim fix``.

``FixSimulator`` speaks the session layer of ``hub_plugin_fix.session`` (the same
sans-I/O code, as acceptor) on 127.0.0.1 or ::1 only, on the kit's ``LoopbackVenue``.
It accepts a Logon addressed to its CompID (``VENUE`` by default, what ``FixOptions``
targets by default), keeps each counterparty's sequence numbers in memory between
connections (a Logon with 141=Y resets them) and the market data it sent to each
(answering a ResendRequest with the real messages, PossDupFlag=Y, and a gap fill over
administrative ones), answers a MarketDataRequest (35=V, 263=1) with a snapshot (35=W)
and then streams incremental refreshes (35=X) of the kit's ``MarketModel``: trades
(269=2 with AggressorSide 2446) and bid/offer levels (269=0/1) of a ``depth_levels``
book, for the entry types asked; unknown (or refused) symbols get a
MarketDataRequestReject (35=Y, 281=0); 263=2 stops the stream.

Faults (``hub_core.simulation.VenueFaults``, all async): ``drop_connections()`` (TCP
reset), ``stall()``/``resume()`` (silence, answers included), ``send_malformed(kind)``
(a message with a wrong CheckSum, or garbage bytes), ``skip_sequence(n)`` (the next
message skips a MsgSeqNum: lost for good, a resend gap-fills it),
``refuse_credentials(on)`` (every Logon answered with a Logout), ``refuse_symbol``.
FIX's own: ``withhold()`` (market data numbered and kept but not sent: a resend brings
it), ``logout_all()`` (a Logout from the venue), ``reject_logons(text)`` (a Logout with
that Text), ``stop_reading()``/``resume_reading()`` (the venue reads nothing, so the
client's sends block).

With an ``ssl_context`` (a server context holding the venue's certificate) it is a
FIX-over-TLS acceptor (``fixs://``): each connection does the TLS handshake first;
one that fails (a plain-TCP client, a client that does not trust the certificate) is
counted in ``tls_failures`` and closed, and the simulator goes on serving.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio

from hub_core.plugin import PRICE_SCALE, ExchangeConfig, format_fixed
from hub_core.simulation import (
    ADD,
    BID,
    CANCEL,
    LOOPBACK_HOSTS,
    ClientLink,
    Instrument,
    LoopbackVenue,
    MarketModel,
    MarketUpdate,
    VenueClient,
    host_port,
)
from hub_plugin_fix import codec as c
from hub_plugin_fix.codec import Frame, Header, MsgType, Tag
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
_LOGON_TIMEOUT_S: Final = 10.0
_OUT_LIMIT: Final = 4 * 1024 * 1024
"""Bytes queued for one client past which market data for it is skipped."""

# known roots: (first bid, tick size) in display units
_PRICES: Final = {"ES": (5000.0, 0.25), "NQ": (18000.0, 0.25), "CL": (70.0, 0.01)}

MALFORMED_KINDS: Final = ("checksum", "garbage", "body_length")
_FIX50SP2: Final = "9"
"""ApplVerID of FIX.5.0SP2: the only application version spoken under FIXT.1.1."""
_UPDATE_ACTION: Final = {ADD: "0", CANCEL: "2"}
"""MDUpdateAction (279) of a level change: new, delete, or (anything else) change."""


def _fixed(value: float) -> int:
    return round(value * PRICE_SCALE)


def instrument(symbol: str, depth: int) -> Instrument:
    """The simulated instrument of ``symbol`` (its root gives the price and the tick)."""
    first, tick = _PRICES.get(symbol.split(" ", maxsplit=1)[0], (100.0, 0.01))
    return Instrument(symbol, _fixed(first), _fixed(tick), depth=depth)


def _entry_type(side: str) -> str:
    return "0" if side == BID else "1"


@dataclass
class _Entry:
    """One MDIncGrp entry: (action, type, price, size, aggressor)."""

    action: str
    entry_type: str
    price: int
    size: int
    aggressor: str = ""


@dataclass
class _Sub:
    req_id: str
    entry_types: frozenset[str]


class _Client(VenueClient[str]):
    """One FIX connection: its acceptor session and market-data subscriptions."""

    def __init__(self, venue: FixSimulator, link: ClientLink, session: c.FixSession) -> None:
        super().__init__(venue, link)
        self.session = session
        self.subs: dict[str, _Sub] = {}
        self.ending = False
        """The session is over (refused, logged out, failed): the reader stops."""
        self.skipped = 0
        self.withhold = 0
        """Market-data messages still to withhold (numbered and kept, not sent)."""

    def drain_session(self) -> None:
        """Queue the session's automatic answers, keeping sequence order."""
        data = self.session.data_to_send()
        if data:
            self.send(data)

    def push(self, data: bytes) -> None:
        self.drain_session()
        self.send(data)


class FixSimulator(LoopbackVenue[_Client]):
    """A FIX acceptor on loopback with a random-walk market and fault injection.

    ``async with FixSimulator(["ES", "NQ"], rate=200) as sim:`` then connect to
    ``sim.endpoint`` (``fix://127.0.0.1:<port>``, ``fixs://`` with an ``ssl_context``);
    or ``await sim.serve()``.
    """

    name = "FIX"

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
        refuse_symbols: Sequence[str] = (),
    ) -> None:
        if not 1 <= depth_levels <= 10:
            raise ValueError(f"depth_levels must be 1..10, got {depth_levels}")
        market = MarketModel([instrument(sym, depth_levels) for sym in symbols], seed=seed)
        super().__init__(
            market,
            rate,
            host=host,
            port=port,
            ssl_context=ssl_context,
            refuse_symbols=refuse_symbols,
        )
        self.market: MarketModel = market
        self.comp_id = comp_id
        self.begin_string = begin_string
        self.users = dict(users) if users else {}
        self.depth_levels = depth_levels
        self.max_clients = max_clients
        self._stores: dict[str, MemoryStore] = {}
        self._kept: dict[str, dict[int, tuple[bytes, int]]] = {}
        """Market data sent to each counterparty (its session's resend store)."""
        self._reject_logons = ""
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

    @property
    def endpoint(self) -> str:
        """``fix://host:port`` to connect to (``fixs://`` over TLS; IPv6 in brackets)."""
        scheme = "fix" if self.ssl_context is None else "fixs"
        return f"{scheme}://{host_port(self.host, self.port)}"

    # -- faults ---------------------------------------------------------------------------
    async def send_malformed(self, kind: str = "checksum") -> None:
        """Send one broken message to every logged-on client.

        ``"checksum"``: a Heartbeat whose CheckSum is wrong (it used a sequence number,
        so the client then sees a gap); ``"body_length"``: a BodyLength that misses
        the CheckSum; ``"garbage"``: bytes that are not FIX at all.
        """
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r} (one of {MALFORMED_KINDS})")
        for cl in self.connected():
            if not cl.established:
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

    async def send_oversized(self, size: int = 2 << 20) -> None:
        """Send every logged-on client one message whose BodyLength (and body) is ``size``
        bytes, over the client's default 1 MiB ``max_message_bytes``."""
        body = b"35=B\x0158=" + b"x" * max(0, size - 9) + b"\x01"
        frame = b"8=FIX.4.4\x019=%d\x01" % len(body) + body + b"10=000\x01"
        for cl in self.connected():
            if cl.established:
                cl.push(frame)

    async def skip_sequence(self, n: int = 1) -> None:
        """Every client's next message skips ``n`` MsgSeqNum (as if messages were lost)."""
        for cl in self.connected():
            if cl.established:
                cl.drain_session()
                cl.session.store.next_sender += n

    def withhold(self, n: int = 1) -> None:
        """Every client's next ``n`` market-data messages are numbered and kept but not
        sent (as if lost on the way): the client sees a gap and asks for a resend, which
        gets the real messages (PossDupFlag=Y, OrigSendingTime)."""
        for cl in self.connected():
            if cl.established:
                cl.withhold += n

    def logout_all(self, text: str = "simulator logout") -> None:
        """Log every client out (35=5 from the venue's side)."""
        for cl in self.connected():
            if cl.established and cl.session.state == c.State.ACTIVE:
                cl.push(cl.session.logout(text))

    def reject_logons(self, text: str = "logon refused by the simulator") -> None:
        """Answer every Logon with a Logout carrying ``text`` ("" turns it off)."""
        self._reject_logons = text

    # -- introspection -------------------------------------------------------------------
    def blocked_writers(self) -> int:
        """Clients whose writer is inside a send that has not completed (the client
        stopped reading and the socket buffers are full), with more data queued."""
        return sum(1 for cl in self.connected() if cl.writing and cl.pending)

    def store_of(self, sender_comp_id: str) -> MemoryStore | None:
        """The sequence numbers kept for a counterparty."""
        return self._stores.get(sender_comp_id)

    # -- market ---------------------------------------------------------------------------
    def market_symbols(self) -> list[str]:
        # a stalled venue makes no market data (nothing piles up to burst on resume)
        return [] if self.stalled else super().market_symbols()

    def on_market(self, update: MarketUpdate, ts: int) -> None:
        entries: list[_Entry] = []
        if (t := update.trade) is not None:
            entries.append(_Entry("0", "2", t.price, t.size, "1" if t.side == BID else "2"))
        entries.extend(
            _Entry(_UPDATE_ACTION.get(ch.action, "1"), _entry_type(ch.side), ch.price, ch.size)
            for ch in update.changes
        )
        for cl in self.connected():
            if update.symbol in cl.subs:
                self._send_incremental(cl, update.symbol, entries)

    # -- encoding -------------------------------------------------------------------------
    def _app_message(self, cl: _Client, msg_type: str) -> Any:
        """A new application message; under FIXT.1.1 its header names the application
        version (ApplVerID 1128 = 9, FIX.5.0SP2), as venues commonly do."""
        msg = cl.session.new_message(msg_type)
        if self.begin_string == "FIXT.1.1":
            msg.append_pair(Tag.APPL_VER_ID, _FIX50SP2, header=True)
        return msg

    def _send_incremental(self, cl: _Client, symbol: str, entries: list[_Entry]) -> None:
        sub = cl.subs.get(symbol)
        if sub is None or cl.session.state != c.State.ACTIVE:
            return
        wanted = [e for e in entries if e.entry_type in sub.entry_types]
        if not wanted:
            return
        if cl.backlog > _OUT_LIMIT:
            cl.skipped += 1  # a reader that stopped reading: its sequence numbers jump
            cl.session.store.next_sender += 1
            return
        msg = self._app_message(cl, MsgType.MARKET_DATA_INCREMENTAL)
        msg.append_pair(Tag.MD_REQ_ID, sub.req_id)
        msg.append_pair(Tag.NO_MD_ENTRIES, len(wanted))
        for e in wanted:
            msg.append_pair(Tag.MD_UPDATE_ACTION, e.action)
            msg.append_pair(Tag.MD_ENTRY_TYPE, e.entry_type)
            msg.append_pair(Tag.SYMBOL, symbol)
            msg.append_pair(Tag.MD_ENTRY_PX, format_fixed(e.price))
            if e.action != "2":
                msg.append_pair(Tag.MD_ENTRY_SIZE, format_fixed(e.size))
            if e.aggressor:
                msg.append_pair(Tag.AGGRESSOR_SIDE, e.aggressor)
        data = cl.session.encode_app(msg)  # kept: a ResendRequest gets it again
        if cl.withhold > 0:
            cl.withhold -= 1  # made and numbered, never sent: the client sees a gap
            self.withheld += 1
            return
        cl.push(data)

    def _send_snapshot(self, cl: _Client, symbol: str, sub: _Sub) -> None:
        bids, asks = self.market.book(symbol).levels()
        levels = [("0", p, q) for p, q in bids] + [("1", p, q) for p, q in asks]
        levels = [lv for lv in levels if lv[0] in sub.entry_types]
        msg = self._app_message(cl, MsgType.MARKET_DATA_SNAPSHOT)
        msg.append_pair(Tag.MD_REQ_ID, sub.req_id)
        msg.append_pair(Tag.SYMBOL, symbol)
        msg.append_pair(Tag.NO_MD_ENTRIES, len(levels))
        for entry_type, price, size in levels:
            msg.append_pair(Tag.MD_ENTRY_TYPE, entry_type)
            msg.append_pair(Tag.MD_ENTRY_PX, format_fixed(price))
            msg.append_pair(Tag.MD_ENTRY_SIZE, format_fixed(size))
        cl.push(cl.session.encode_app(msg))

    def _reject_request(self, cl: _Client, req_id: str, reason: str, text: str) -> None:
        msg = self._app_message(cl, MsgType.MARKET_DATA_REQUEST_REJECT)
        msg.append_pair(Tag.MD_REQ_ID, req_id)
        msg.append_pair(Tag.MD_REQ_REJ_REASON, reason)
        msg.append_pair(Tag.TEXT, text)
        cl.push(cl.session.encode_app(msg))

    # -- one connection ------------------------------------------------------------------
    def new_client(self, link: ClientLink) -> _Client:
        session = c.FixSession(Header(self.begin_string, self.comp_id, ""), role="acceptor")
        return _Client(self, link, session)

    def heartbeat_due(self, client: _Client) -> float | None:
        # the session's own timers: heartbeats, TestRequests, the logout wait
        if not client.established or client.ending:
            return None
        return client.session.next_timeout()

    def heartbeat(self, client: _Client) -> None:
        client.session.tick()
        client.drain_session()
        if client.session.state == c.State.FAILED:
            # the client went silent (no answer to our TestRequest): hang up
            client.ending = True
            client.close()

    async def serve_client(self, client: _Client) -> None:
        session = client.session
        with anyio.move_on_after(_LOGON_TIMEOUT_S) as logon_wait:
            while not client.established and not client.ending:
                if not await self._read_once(client):
                    break
        if not logon_wait.cancelled_caught:
            while not client.ending and session.state not in (c.State.CLOSED, c.State.FAILED):
                if not await self._read_once(client):
                    break
        client.drain_session()  # a Logout answer goes out before the close

    async def _read_once(self, cl: _Client) -> bool:
        """One read and every event it gives; False when the session is over."""
        session = cl.session
        session.receive_data(await cl.receive_bytes())
        while True:
            event = session.next_event()
            if isinstance(event, c.NeedData):
                break
            if isinstance(event, c.ConnectionClosed):
                return False
            self._on_event(cl, event)
        if session.resend_requests:
            self.resend_requests.extend(session.resend_requests)
            session.resend_requests.clear()
        cl.drain_session()
        return not cl.ending

    def _on_event(self, cl: _Client, event: c.Event) -> None:
        if isinstance(event, c.LogonRequested):
            self._on_logon(cl, event)
        elif isinstance(event, c.AppMessage):
            frame = event.frame
            if frame.msg_type == MsgType.MARKET_DATA_REQUEST:
                self._on_request(cl, frame)
            else:
                log.debug("simulator: ignoring 35=%s", frame.msg_type)
        elif isinstance(event, c.LoggedOut | c.SessionFailed):
            if isinstance(event, c.LoggedOut) and event.by_peer:
                self.logouts.append(event.text)
            if isinstance(event, c.SessionFailed):
                self.session_failures.append(event.reason)
            cl.established = False
            cl.ending = True
            log.debug("simulator session over: %r", event)
        elif isinstance(event, c.SequenceGap):
            self.inbound_gaps.append((event.expected, event.received))
            log.debug("simulator: inbound gap %r", event)
        elif isinstance(event, c.Malformed):
            log.warning("simulator: malformed message from client: %s", event.reason)

    def _on_logon(self, cl: _Client, req: c.LogonRequested) -> None:
        session = cl.session
        refusal = ""
        if self._reject_logons:
            refusal = self._reject_logons
        elif self.credentials_refused:
            refusal = "credentials refused"
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
            cl.ending = True
            return
        store = self._stores.setdefault(req.sender_comp_id, MemoryStore())
        kept = self._kept.setdefault(req.sender_comp_id, {})
        cl.push(session.accept_logon(store, kept))
        if session.state == c.State.ACTIVE:
            cl.established = True
            self.logons.append((req.sender_comp_id, session.expected_seq - 1, req.reset))
            self.appl_ver_ids.append(req.default_appl_ver_id)
        else:
            cl.ending = True  # refused inside accept_logon (sequence number too low)

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
                cl.subscriptions.discard(sym)
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
            if sym not in self.market or self.symbol_refused(sym):
                self._reject_request(cl, req_id, "0", f"unknown symbol {sym!r}")
                continue
            sub = _Sub(req_id, types or frozenset({"0", "1", "2"}))
            cl.subs[sym] = sub
            cl.subscriptions.add(sym)
            self._send_snapshot(cl, sym, sub)


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
