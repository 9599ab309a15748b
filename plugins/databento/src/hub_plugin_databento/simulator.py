"""A loopback Databento live gateway: what the official client connects to, offline.

``GatewaySimulator`` speaks the protocol of sdk-docs/protocols/databento-gateway.md
on 127.0.0.1 or ::1 only, on the kit's ``LoopbackVenue``: greeting and CRAM
challenge, the authentication request (any well-formed key, or only the keys in
``api_keys``), subscription lines, ``start_session``, then a DBN v3 metadata header
and records built with ``databento-dbn``: symbol mappings, subscription acks,
trades, mbp-1, mbp-10 and mbo (with a snapshot when asked), heartbeats at the
session's interval.

The market runs whether anyone listens or not, as a real venue's does: every
record is made once, numbered by one venue-wide ``sequence``, kept (the latest
``history`` records) for intraday replay from ``start=``, and sent to each session
that subscribed its schema and instrument. So a session that reconnects with
``start=`` gets exactly the records it missed, byte for byte.

Faults (``hub_core.simulation.VenueFaults``, all async): ``drop_connections()``,
``stall()``/``resume()``, ``send_malformed()``, ``skip_sequence()``,
``refuse_credentials(on)``, ``refuse_symbol(symbol, on)``; and the gateway's own:
``send_error(text, code)``, ``slow_reader_warning()``, ``skip_records(n)`` (records
lost to a slow reader, reported by error code 7), ``skip_in_replay(n)`` (the next
replay omits ``n`` records yet reports completion), ``replay_window_s``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import databento_dbn as dbn

from hub_core.simulation import (
    PRICE_SCALE,
    ClientLink,
    Instrument,
    LoopbackVenue,
    MarketModel,
    MarketTrade,
    MarketUpdate,
    OptionParser,
    VenueClient,
    parse_bool,
    parse_list,
    simulator_options,
)
from hub_plugin_databento import codec as c

log = logging.getLogger("hub_plugin_databento.simulator")

__all__ = ["DEFAULT_DATASET", "DEFAULT_SYMBOLS", "GatewaySimulator", "serve_simulator"]

DEFAULT_DATASET: Final = "GLBX.MDP3"
DEFAULT_SYMBOLS: Final = ("ESZ6", "NQZ6")
PUBLISHER_ID: Final = 1
"""GLBX.MDP3's publisher id: every record carries it."""
F_LAST: Final = 1 << 7
F_SNAPSHOT: Final = 1 << 5
RECV_DELAY_NS: Final = 1_500
"""``ts_recv`` is ``ts_event`` plus this: the gateway's capture delay."""
_HANDSHAKE_TIMEOUT_S: Final = 10.0
_HISTORY: Final = 200_000
_UNDEF_PRICE: Final = 9_223_372_036_854_775_807
_AUTH_LEN: Final = 64 + 1 + c.BUCKET_ID_LENGTH
"""A CRAM reply: 64 hex digits, ``-``, the bucket."""

# known roots: (first price, tick size) in display units
_PRICES: Final = {"ES": (6000.0, 0.25), "NQ": (21000.0, 0.25), "CL": (70.0, 0.01)}
# the stubs type the enum members as str: build them from their letters instead
_SIDES: Final[dict[str, dbn.Side]] = {k: dbn.Side.from_str(k) for k in "BAN"}
_ACTIONS: Final[dict[str, dbn.Action]] = {k: dbn.Action.from_str(k) for k in "AMCTR"}
_RAW_SYMBOL: Final = dbn.SType.from_str("raw_symbol")
_BBO_INTERVALS: Final = {"bbo-1s": 1_000_000_000, "bbo-1m": 60_000_000_000}
_BBO_RTYPES: Final = {"bbo-1s": 0xC3, "bbo-1m": 0xC4}
_INSTRUMENT_ID: Final = dbn.SType.from_str("instrument_id")

SERVED_SCHEMAS: Final = ("trades", "tbbo", "mbp-1", "mbp-10", "mbo", "bbo-1s", "bbo-1m")
"""The schemas the simulator makes; others are refused with error code 5."""
MALFORMED_UNKNOWN_RTYPE: Final = bytes([8, 0xEE]) + bytes(30)
"""A 32-byte record of an rtype no DBN version defines: skipped by its length."""


def error_record(ts: int, text: str, code: int) -> bytes:
    """An ``ErrorMsg`` record."""
    return bytes(dbn.ErrorMsg(ts, text, code=dbn.ErrorCode(code)))


def system_record(ts: int, text: str, code: int) -> bytes:
    """A ``SystemMsg`` record."""
    return bytes(dbn.SystemMsg(ts, text, code=dbn.SystemCode(code)))


def instrument(symbol: str, depth: int = 10) -> Instrument:
    """The simulated instrument of ``symbol``: its root (``ES`` of ``ESZ6``) gives the
    first price and tick; sizes are whole contracts."""
    root = symbol[:2] if symbol[:2] in _PRICES else symbol
    first, tick = _PRICES.get(root, (100.0, 0.01))
    return Instrument(symbol, round(first * PRICE_SCALE), round(tick * PRICE_SCALE), depth=depth)


@dataclass(slots=True)
class Record:
    """One record the gateway made: kept for replay, sent to whoever subscribed it."""

    ts_event: int
    schema: str
    instrument_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class _What:
    """What a record says happened: DBN action and side letters, price, size."""

    action: str
    side: str
    price: int
    size: int


@dataclass
class _Sub:
    schemas: set[str] = field(default_factory=set)


class _Session(VenueClient[str]):
    """One gateway session: the codec, what it subscribed, whether it started."""

    def __init__(self, venue: GatewaySimulator, link: ClientLink) -> None:
        super().__init__(venue, link)
        self.codec = c.GatewayCodec()
        self.subs: dict[int, _Sub] = {}
        """instrument_id -> the schemas this session takes of it."""
        self.requests: list[c.Subscription] = []
        self.started = False
        self.session_id = ""
        self.dataset = ""
        self.records_sent = 0
        self.replayed = 0

    def wants(self, schema: str, instrument_id: int) -> bool:
        sub = self.subs.get(instrument_id)
        return sub is not None and schema in sub.schemas

    def deliver(self, record: Record) -> None:
        if self.started and self.wants(record.schema, record.instrument_id):
            self.send(record.data)
            self.records_sent += 1


class GatewaySimulator(LoopbackVenue[_Session]):
    """A Databento live gateway on loopback with a random-walk market and faults.

    ``async with GatewaySimulator(["ESZ6"], rate=200) as sim:`` then connect the
    official client (``databento.Live(key, gateway="127.0.0.1", port=sim.port)``) or
    the hub to ``sim.endpoint``.
    """

    name = "Databento gateway"
    client_errors = (c.CodecError,)

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        rate: float = 100.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        dataset: str = DEFAULT_DATASET,
        api_keys: Sequence[str] = (),
        depth_levels: int = 10,
        seed: int | None = None,
        history: int = _HISTORY,
        replay_window_s: float = c.REPLAY_WINDOW_NS / 1e9,
        refuse_symbols: Sequence[str] = (),
        bench: bool = False,
        bench_batch: int = 8192,
    ) -> None:
        if not 1 <= depth_levels <= 10:
            raise ValueError(f"depth_levels must be 1..10, got {depth_levels}")
        market = MarketModel([instrument(s, depth_levels) for s in symbols], seed=seed)
        super().__init__(market, rate, host=host, port=port, refuse_symbols=refuse_symbols)
        self.market: MarketModel = market
        self.dataset = dataset
        self.api_keys = set(api_keys)
        """Keys the gateway accepts; empty: any well-formed key."""
        self.instrument_ids = {s: 1000 + i for i, s in enumerate(symbols)}
        """symbol -> instrument id (fixed for the venue's life, as Databento's are)."""
        self.records: deque[Record] = deque(maxlen=history)
        """The latest records made, oldest first: what ``start=`` replays from."""
        self.replay_window_ns = int(replay_window_s * 1e9)
        self.sequences: dict[str, int] = dict.fromkeys(SERVED_SCHEMAS, 0)
        """The last sequence number of each schema: every schema is a channel of its own,
        numbered across instruments, so a session that takes a schema for every symbol
        sees it contiguous."""
        self.sessions_started = 0
        self.replays = 0
        """Subscriptions served with ``start=`` (a replay) so far."""
        self.bench = bench
        """Instead of the market: pre-built record batches as fast as the socket takes
        them (for benchmarks), to every started session."""
        self.bench_batch = max(16, bench_batch)
        self._skip_in_replay = 0
        self._skip_live = 0
        self._skipped = anyio.Event()
        self._orders: dict[tuple[str, str, int], int] = {}
        self._last_trade: dict[int, tuple[int, int, str]] = {}
        self._bbo_at: dict[str, int] = dict.fromkeys(_BBO_INTERVALS, 0)
        self._next_order = 1

    # -- the records -----------------------------------------------------------------
    def _take_seq(self, schema: str) -> int:
        seq = self.sequences[schema] + 1
        self.sequences[schema] = seq
        return seq

    def _emit(self, schema: str, instrument_id: int, ts: int, data: bytes) -> None:
        record = Record(ts, schema, instrument_id, data)
        self.records.append(record)
        if self._skip_live > 0:
            self._skip_live -= 1
            if self._skip_live == 0:
                self._skipped.set()
            return
        for s in self.connected():
            s.deliver(record)

    def _trade(self, iid: int, ts: int, t: MarketTrade) -> bytes:
        msg = dbn.TradeMsg(
            PUBLISHER_ID,
            iid,
            ts,
            t.price,
            t.size // PRICE_SCALE,
            _ACTIONS["T"],
            _SIDES[t.side],
            0,
            ts + RECV_DELAY_NS,
            flags=F_LAST,
            sequence=self._take_seq("trades"),
        )
        return bytes(msg)

    def _mbp1(
        self,
        iid: int,
        ts: int,
        top: tuple[int, int, int, int],
        what: _What,
        schema: str = "mbp-1",
    ) -> bytes:
        bid, bid_sz, ask, ask_sz = top
        level = dbn.BidAskPair(bid, ask, bid_sz // PRICE_SCALE, ask_sz // PRICE_SCALE, 1, 1)
        msg = dbn.MBP1Msg(
            PUBLISHER_ID,
            iid,
            ts,
            what.price,
            what.size // PRICE_SCALE,
            _ACTIONS[what.action],
            _SIDES[what.side],
            0,
            ts + RECV_DELAY_NS,
            flags=F_LAST,
            sequence=self._take_seq(schema),
            levels=level,  # type: ignore[arg-type]  # the stub says a list: it takes one pair
        )
        return bytes(msg)

    def _mbp10(self, symbol: str, iid: int, ts: int, what: _What) -> bytes:
        bids, asks = self.market.book(symbol).levels(10)
        levels = []
        for i in range(10):
            bp, bs = bids[i] if i < len(bids) else (_UNDEF_PRICE, 0)
            ap, az = asks[i] if i < len(asks) else (_UNDEF_PRICE, 0)
            levels.append(
                dbn.BidAskPair(
                    bp, ap, bs // PRICE_SCALE, az // PRICE_SCALE, int(bs > 0), int(az > 0)
                )
            )
        msg = dbn.MBP10Msg(
            PUBLISHER_ID,
            iid,
            ts,
            what.price,
            what.size // PRICE_SCALE,
            _ACTIONS[what.action],
            _SIDES[what.side],
            0,
            ts + RECV_DELAY_NS,
            flags=F_LAST,
            sequence=self._take_seq("mbp-10"),
            levels=levels,
        )
        return bytes(msg)

    def _mbo(
        self, iid: int, ts: int, order_id: int, what: _What, flags: int, sequence: int = 0
    ) -> bytes:
        """An mbo record; ``sequence`` 0 takes the channel's next number (a snapshot's
        records carry the book's current one instead)."""
        msg = dbn.MBOMsg(
            PUBLISHER_ID,
            iid,
            ts,
            order_id,
            what.price,
            what.size // PRICE_SCALE,
            _ACTIONS[what.action],
            _SIDES[what.side],
            ts + RECV_DELAY_NS,
            flags=flags,
            sequence=sequence or self._take_seq("mbo"),
        )
        return bytes(msg)

    def _order_id(self, symbol: str, side: str, price: int, new: bool) -> int:
        # one resting order per price level: the level's size is that order's size
        key = (symbol, side, price)
        if new or key not in self._orders:
            self._orders[key] = self._next_order
            self._next_order += 1
        return self._orders[key]

    def on_market(self, update: MarketUpdate, ts: int) -> None:
        sym = update.symbol
        iid = self.instrument_ids[sym]
        t = update.trade
        if t is not None:
            traded = _What("T", t.side, t.price, t.size)
            self._emit("trades", iid, ts, self._trade(iid, ts, t))
            self._emit("mbp-1", iid, ts, self._mbp1(iid, ts, update.top, traded))
            self._emit("tbbo", iid, ts, self._mbp1(iid, ts, update.top, traded, "tbbo"))
            self._last_trade[iid] = (t.price, t.size, t.side)
            self._emit("mbo", iid, ts, self._mbo(iid, ts, 0, traded, 0))
        changes = update.changes
        for i, ch in enumerate(changes):
            order_id = self._order_id(sym, ch.side, ch.price, ch.action == "A")
            if ch.action == "C":
                self._orders.pop((sym, ch.side, ch.price), None)
            flags = F_LAST if i == len(changes) - 1 else 0
            what = _What(ch.action, ch.side, ch.price, ch.size)
            self._emit("mbo", iid, ts, self._mbo(iid, ts, order_id, what, flags))
        if changes:
            last = changes[-1]
            what = _What(last.action, last.side, last.price, last.size)
            self._emit("mbp-10", iid, ts, self._mbp10(sym, iid, ts, what))
            if update.top_changed and t is None:
                self._emit("mbp-1", iid, ts, self._mbp1(iid, ts, update.top, what))

    def after_market_step(self, ts: int) -> None:
        """At each whole interval of ``bbo-1s`` and ``bbo-1m``: every instrument's top of
        book with its last trade, as the gateway samples them."""
        for schema, interval in _BBO_INTERVALS.items():
            boundary = ts - ts % interval
            if boundary <= self._bbo_at[schema]:
                continue
            first = self._bbo_at[schema] == 0
            self._bbo_at[schema] = boundary
            if first:
                continue  # start sampling at the next whole interval
            for symbol, iid in self.instrument_ids.items():
                self._emit(schema, iid, boundary, self._bbo(schema, symbol, iid, boundary))

    def _bbo(self, schema: str, symbol: str, iid: int, ts: int) -> bytes:
        bid, bid_sz, ask, ask_sz = self.market.book(symbol).top()
        price, size, side = self._last_trade.get(iid, (_UNDEF_PRICE, 0, "N"))
        level = dbn.BidAskPair(bid, ask, bid_sz // PRICE_SCALE, ask_sz // PRICE_SCALE, 1, 1)
        msg = dbn.BBOMsg(
            _BBO_RTYPES[schema],
            PUBLISHER_ID,
            iid,
            ts,
            price,
            size // PRICE_SCALE,
            _SIDES[side],
            ts + RECV_DELAY_NS,
            flags=F_LAST,
            sequence=self._take_seq(schema),
            levels=level,  # type: ignore[arg-type]  # the stub says a list: it takes one pair
        )
        return bytes(msg)

    def market_symbols(self) -> list[str]:
        if self.bench:
            return []
        # the venue's market runs with or without listeners: a session that reconnects
        # replays what it made meanwhile
        return list(self.market.symbols)

    def _snapshot(self, s: _Session, symbol: str, ts: int) -> None:
        """The book of ``symbol`` as mbo records flagged F_SNAPSHOT: a clear, then one
        order a level, the last also F_LAST (sent to this session only, never kept)."""
        iid = self.instrument_ids[symbol]
        bids, asks = self.market.book(symbol).levels()
        orders = [_What("A", "B", p, q) for p, q in bids] + [_What("A", "A", p, q) for p, q in asks]
        clear = _What("R", "N", _UNDEF_PRICE, 0)
        seq = max(self.sequences["mbo"], 1)
        s.send(self._mbo(iid, ts, 0, clear, F_SNAPSHOT | (0 if orders else F_LAST), seq))
        for i, what in enumerate(orders):
            flags = F_SNAPSHOT | (F_LAST if i == len(orders) - 1 else 0)
            order_id = self._order_id(symbol, what.side, what.price, False)
            s.send(self._mbo(iid, ts, order_id, what, flags, seq))

    # -- faults ---------------------------------------------------------------------------
    async def send_malformed(self) -> None:
        """Send every started session one record of an undefined rtype (skipped by its
        length by a correct reader)."""
        for s in self.connected():
            if s.started:
                s.send(MALFORMED_UNKNOWN_RTYPE)

    async def skip_sequence(self) -> None:
        """Lose the next record made, for every session (its sequence number is gone)."""
        self._skip_live += 1

    async def send_error(self, text: str, code: int = c.ERR_INTERNAL) -> None:
        """An error record (``ErrorMsg``) to every started session."""
        record = error_record(time.time_ns(), text, code)
        for s in self.connected():
            if s.started:
                s.send(record)

    async def slow_reader_warning(self) -> None:
        """A slow-reader warning (system code 2) to every started session."""
        text = "Warning: slow reading detected; records may be skipped"
        record = system_record(time.time_ns(), text, c.SYS_SLOW_READER_WARNING)
        for s in self.connected():
            if s.started:
                s.send(record)

    async def skip_records(self, n: int) -> None:
        """Lose the next ``n`` records for every session, then tell them so with error
        code 7, as the gateway does for a reader that fell behind."""
        self._skip_live += n
        self._skipped = anyio.Event()
        await self._skipped.wait()
        await self.send_error(f"Skipped {n} records after slow reading", c.ERR_SKIPPED_RECORDS)

    def skip_in_replay(self, n: int) -> None:
        """The next replay leaves out ``n`` records (from its middle) and still reports
        completion: a client must not take ``ReplayCompleted`` as proof."""
        self._skip_in_replay += n

    # -- the venue's part ------------------------------------------------------------------
    def new_client(self, link: ClientLink) -> _Session:
        return _Session(self, link)

    def heartbeat(self, client: _Session) -> None:
        if client.started:
            client.send(system_record(time.time_ns(), "Heartbeat", c.SYS_HEARTBEAT))

    async def serve_client(self, client: _Session) -> None:
        codec = client.codec
        client.send(codec.greeting())
        with anyio.move_on_after(_HANDSHAKE_TIMEOUT_S) as timeout:
            auth = await self._next(client)
        if timeout.cancelled_caught or not isinstance(auth, c.AuthRequest):
            if isinstance(auth, c.BadLine):
                client.send(codec.refuse(auth.reason))
            return
        error = self._check_auth(client, auth)
        if error:
            client.send(codec.refuse(error))
            return
        client.session_id = secrets.token_hex(6)
        client.dataset = auth.dataset
        client.heartbeat_s = float(auth.heartbeat_interval_s or 30)
        client.established = True
        self.sessions_started += 1
        client.send(codec.accept(client.session_id))
        while True:
            event = await self._next(client)
            if isinstance(event, c.ConnectionClosed):
                return
            ts = time.time_ns()
            if isinstance(event, c.Subscription):
                client.requests.append(event)
                if client.started:
                    self._serve_subscription(client, event, ts)
            elif isinstance(event, c.SessionStart):
                if not client.started:
                    self._start(client, ts)
            elif isinstance(event, c.BadLine):
                text = f"Invalid request: {event.reason}"
                if client.started:
                    client.send(error_record(ts, text, c.ERR_INVALID_SUBSCRIPTION))
                else:
                    log.info("databento simulator: %s", text)

    async def _next(self, client: _Session) -> c.ClientEvent:
        codec = client.codec
        while True:
            event = codec.next_event()
            if not isinstance(event, c.NeedData):
                return event
            codec.receive_data(await client.receive_bytes())

    def _check_auth(self, client: _Session, auth: c.AuthRequest) -> str:
        if auth.encoding != "dbn":
            return f"Unsupported encoding {auth.encoding!r}: this gateway sends dbn"
        if auth.compression not in ("none", ""):
            return f"Unsupported compression {auth.compression!r}"
        if auth.dataset != self.dataset:
            return f"Unknown dataset {auth.dataset!r}: this gateway serves {self.dataset}"
        hb = auth.heartbeat_interval_s
        if hb is not None and hb < 5:
            return f"heartbeat_interval_s must be at least 5, got {hb}"
        if self.credentials_refused:
            return "Authentication failed."
        if self.api_keys:
            if not any(c.verify_cram(client.codec.cram, auth.auth, k) for k in self.api_keys):
                return "Authentication failed."
        elif len(auth.auth) != _AUTH_LEN or len(auth.bucket) != c.BUCKET_ID_LENGTH:
            return "Authentication failed."
        return ""

    def _start(self, client: _Session, ts: int) -> None:
        client.started = True
        metadata = dbn.Metadata(client.dataset, ts, _RAW_SYMBOL, _INSTRUMENT_ID, None)
        client.send(metadata.encode())
        for sub in client.requests:
            self._serve_subscription(client, sub, ts)
        if self.bench:
            client.start_soon(self._blast, client)

    async def _blast(self, client: _Session) -> None:
        """Bench mode: one batch of real-shaped records (for what the session took:
        trades, mbp-1, mbp-10 in 25/60/15 shares), built once, sent again and again;
        the next batch is queued once the writer has sent the last."""
        wanted = [(iid, sub.schemas) for iid, sub in client.subs.items()]
        if not wanted:
            return
        parts: list[bytes] = []
        ts = time.time_ns()
        for i in range(self.bench_batch):
            iid, schemas = wanted[i % len(wanted)]
            symbol = next(s for s, v in self.instrument_ids.items() if v == iid)
            book = self.market.book(symbol)
            top = book.top()
            kind = i % 20
            if kind < 5 and "trades" in schemas:
                t = MarketTrade(top[2], PRICE_SCALE * (1 + i % 3), "B", i)
                parts.append(self._trade(iid, ts + i, t))
            elif kind < 17 and "mbp-1" in schemas:
                what = _What("A", "B", top[0], top[1])
                parts.append(self._mbp1(iid, ts + i, top, what))
            elif "mbp-10" in schemas:
                what = _What("M", "A", top[2], top[3])
                parts.append(self._mbp10(symbol, iid, ts + i, what))
        batch = b"".join(parts)
        while True:
            client.records_sent += len(parts)
            client.send(batch)
            await client.drained()

    def _serve_subscription(self, client: _Session, sub: c.Subscription, ts: int) -> None:
        req = f"Subscription request {sub.id or 0}"
        if sub.schema not in SERVED_SCHEMAS:
            text = f"{req} for {sub.schema} data failed: schema not served"
            client.send(error_record(ts, text, c.ERR_INVALID_SUBSCRIPTION))
            return
        if sub.stype_in != "raw_symbol":
            text = f"{req} failed: stype_in {sub.stype_in} not served"
            client.send(error_record(ts, text, c.ERR_INVALID_SUBSCRIPTION))
            return
        if sub.start is not None and sub.start < ts - self.replay_window_ns:
            text = f"{req} failed: start {sub.start} is older than the intraday replay window"
            client.send(error_record(ts, text, c.ERR_REPLAY_AGED_OUT))
            return
        taken: list[str] = []
        for symbol in sub.symbols:
            iid = self.instrument_ids.get(symbol)
            if iid is None or self.symbol_refused(symbol):
                text = f"Failed to resolve symbol: {symbol}"
                client.send(error_record(ts, text, c.ERR_SYMBOL_RESOLUTION_FAILED))
                continue
            client.send(
                bytes(
                    dbn.SymbolMappingMsg(
                        PUBLISHER_ID, iid, ts, _RAW_SYMBOL, symbol,
                        _INSTRUMENT_ID, str(iid), ts, 2**64 - 1,
                    )
                )
            )  # fmt: skip
            client.subs.setdefault(iid, _Sub()).schemas.add(sub.schema)
            client.subscriptions.add(symbol)
            taken.append(symbol)
        if sub.is_last:
            text = f"{req} for {sub.schema} data succeeded"
            client.send(system_record(ts, text, c.SYS_SUBSCRIPTION_ACK))
        if sub.snapshot and sub.schema == "mbo":
            for symbol in taken:
                self._snapshot(client, symbol, ts)
        if sub.start is not None:
            self._replay(client, sub, taken, ts)

    def _replay(self, client: _Session, sub: c.Subscription, symbols: list[str], ts: int) -> None:
        self.replays += 1
        ids = {self.instrument_ids[s] for s in symbols}
        start = sub.start or 0
        found = [
            r for r in self.records
            if r.ts_event >= start and r.schema == sub.schema and r.instrument_id in ids
        ]  # fmt: skip
        skip, self._skip_in_replay = self._skip_in_replay, 0
        if skip:
            middle = len(found) // 2
            del found[middle : middle + skip]
        for r in found:
            client.send(r.data)
        client.replayed += len(found)
        text = f"Finished {sub.schema} replay"
        client.send(system_record(ts, text, c.SYS_REPLAY_COMPLETED))


# -- SimulatorSpec.serve -------------------------------------------------------------------
_OPTION_PARSERS: dict[str, tuple[OptionParser, str] | None] = {
    "dataset": (str, "a dataset such as GLBX.MDP3"),
    "api_keys": (
        parse_list,
        "a comma-separated list of API keys",
    ),
    "depth_levels": (int, "a whole number"),
    "seed": (int, "a whole number"),
    "history": (int, "a whole number of records"),
    "replay_window_s": (float, "seconds"),
    "refuse_symbols": (
        parse_list,
        "a comma-separated list of symbols",
    ),
    "bench": (parse_bool, "true or false"),
    "bench_batch": (int, "a whole number of records"),
}


async def serve_simulator(
    host: str,
    port: int,
    symbols: list[str],
    rate: float,
    ready: Callable[[str, int], None],
    **kwargs: Any,
) -> None:
    """Run a gateway until cancelled (``SimulatorSpec.serve`` for ``hub sim``/``hub demo``).

    ``kwargs`` are ``hub sim -o KEY=VALUE`` options (text, converted here): ``dataset``,
    ``api_keys``, ``depth_levels``, ``seed``, ``history``, ``replay_window_s``,
    ``refuse_symbols``, ``bench``, ``bench_batch``.
    """
    options = simulator_options("databento", kwargs, _OPTION_PARSERS)
    sim = GatewaySimulator(symbols or DEFAULT_SYMBOLS, rate, host=host, port=port, **options)  # type: ignore[arg-type]
    await sim.serve(ready)
