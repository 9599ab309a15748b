"""One session with TWS / IB Gateway on ``ib_async``, with IB's codes driving health.

ib_async does the handshake, the start-up requests and the contract lookups. Once the
session is up, the socket's bytes go through our bounded framing (the kit's
``LengthPrefixFramer``, one slice per frame: a 1 MiB backlog costs what sixteen 64 KiB
reads do) and the market-data messages of our own requests (``tickPrice``,
``tickSize``, ``tickByTick``, ``updateMktDepth``, ``marketDataType``,
``historicalTicksLast``, ``error``) are read here, their numbers kept as IB's text for
the sink's exact parsing; every other message goes on to ib_async's decoder. Market
data is requested with ib_async's client (its 45 messages/s throttle included).

IB's connectivity codes (sdk-docs/protocols/tws-simulator.md, README):

- 1100: the socket stays, every symbol is marked in error, the blind window opens at
  the last data received;
- 1101 (data lost): the Gap is closed and every stream is requested again with fresh
  request ids (and, with ``backfill``, the trades missed are fetched first);
- 1102 (data kept): the Gap is closed, then any stream silent past its usual
  inter-arrival is requested again;
- 2103/2104 (market-data farm broken/OK), 2105/2106 (HMDS), 2157/2158 (sec-def): per
  farm in ``health().detail``; 2103 opens a blind window for the market-data streams,
  2104 closes it and verifies them as 1102 does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import anyio
from ib_async import IB, Contract
from ib_async.ib import StartupFetch

from hub_core.plugin import (
    ConfigError,
    ConnectionFailed,
    ConnectionHealth,
    DecodeError,
    ExchangeConfig,
    MalformedNumber,
    NeedData,
    Side,
    Sink,
    SubscriptionError,
    connect_failure,
    parse_fixed,
    split_host_port,
)
from hub_plugin_ibkr import codec
from hub_plugin_ibkr.codec import (
    DELAYED_TICKS,
    DEPTH_BID,
    DEPTH_DELETE,
    DEPTH_INSERT,
    ClientCodec,
    TickType,
)
from hub_plugin_ibkr.options import (
    MARKET_DATA_TYPE_CODES,
    MARKET_DATA_TYPE_NAMES,
    ContractSpec,
    IbkrOptions,
)

log = logging.getLogger("hub_plugin_ibkr")

REFUSALS: Final = {
    200: "unknown contract (IB error 200)",
    354: "market data not subscribed (IB error 354)",
    10089: "market data needs an additional API subscription (IB error 10089)",
    10090: "part of the market data is not subscribed (IB error 10090)",
    10091: "part of the market data needs an additional API subscription (IB error 10091)",
    10186: "market data not subscribed and delayed data not enabled (IB error 10186)",
    10190: "IB's tick-by-tick limit reached (IB error 10190)",
    309: "IB's market-depth limit reached (IB error 309)",
    101: "IB's market-data line limit reached (IB error 101)",
}
"""Errors that refuse one request: the symbol is refused, never retried in a loop."""
CLIENT_ID_IN_USE: Final = 326
FARM_CODES: Final = {
    2103: ("market", False),
    2104: ("market", True),
    2105: ("historical", False),
    2106: ("historical", True),
    2157: ("secdef", False),
    2158: ("secdef", True),
}
COMPETING_SESSION: Final = 10197
DEPTH_RESET: Final = 317
DELAYED_NOTICE: Final = 10167
SILENCE_FACTOR: Final = 3.0
"""After 1102/2104 a stream silent for this many of its usual inter-arrival times (at
least ``MIN_SILENCE_S``) is requested again."""
MIN_SILENCE_S: Final = 0.25
MAX_SILENCE_S: Final = 30.0
HISTORY_PAGE: Final = 1000


def _any(obj: object) -> Any:
    """ib_async's client and wrapper are untyped: their calls are checked by our tests."""
    return obj


def _contract(symbol: str, spec: ContractSpec | None) -> Contract:
    """The IB contract a hub symbol names (a US stock on SMART unless ``contracts`` says)."""
    s = spec or ContractSpec()
    return Contract(
        conId=s.con_id,
        symbol=s.symbol or (symbol if not s.local_symbol else ""),
        secType=s.sec_type,
        lastTradeDateOrContractMonth=s.last_trade_date,
        strike=s.strike,
        right=s.right,
        multiplier=s.multiplier,
        exchange=s.exchange,
        primaryExchange=s.primary_exchange,
        currency=s.currency,
        localSymbol=s.local_symbol,
        tradingClass=s.trading_class,
    )


class _Flag:
    """Set once; ``wait()`` returns once set. Made without an event loop (a connection
    may be created outside one), its anyio event only when someone waits."""

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if not self._set:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


class _Pulse:
    """``set()`` wakes whoever waits now; ``wait()`` waits for the next ``set()``."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def set(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self) -> None:
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


@dataclass
class StreamState:
    """One market-data request of ours: which symbol, its quote or book, its liveness."""

    req_id: int
    kind: str  # "top", "AllLast", "BidAsk", "depth"
    symbol: str
    bid: str = ""
    bid_size: str = ""
    ask: str = ""
    ask_size: str = ""
    bids: list[tuple[int, int]] = field(default_factory=list)
    asks: list[tuple[int, int]] = field(default_factory=list)
    rebuilding: bool = True
    granted: int = 0
    """The market-data type IB granted (``marketDataType``; 0: not said yet)."""
    answered: bool = False
    refused: str = ""
    last_ns: int = 0
    """``time.monotonic_ns()`` of its last message."""
    interval_ns: float = 0.0
    """Its smoothed inter-arrival time."""


class IbkrConnection:
    """One TWS API session delivering to ``sink`` (see the module docs)."""

    def __init__(
        self,
        config: ExchangeConfig,
        options: IbkrOptions,
        sink: Sink,
        con_ids: dict[str, Contract] | None = None,
    ) -> None:
        self._config = config
        self._options = options
        self._sink = sink
        self._contracts: dict[str, Contract] = con_ids if con_ids is not None else {}
        self._ib: IB | None = None
        self._codec = ClientCodec()
        self._health = ConnectionHealth()
        self._streams: dict[int, StreamState] = {}
        self._symbols: dict[str, list[StreamState]] = {}
        self._errors: dict[int, tuple[int, str]] = {}
        self._answered = _Pulse()
        self._ended = _Flag()
        self._failure: BaseException | None = None
        self._closing = False
        self._clash = False
        self._endpoint = ""
        self._connect_scope: anyio.CancelScope | None = None
        self._last_data_ns = 0  # wall-clock ns of the last market data
        self._blind_since = 0  # wall ns: the last data before 1100, 0: not blind
        self._blind_reason = ""
        self._farm_blind_since = 0
        self._farms: dict[str, str] = {}
        self._tbt_times: dict[str, float] = {}
        self._history: dict[int, codec.HistoricalTicksLast] = {}
        self._history_done: dict[int, anyio.Event] = {}
        self._history_times: list[float] = []
        self._jobs: list[Callable[[], Any]] = []
        self._wake = _Pulse()
        self._ts_recv = 0
        self._mono_recv = 0
        self._paused = False
        self._last_trade: dict[str, tuple[int, int]] = {}
        """Symbol -> (second of its last live trade, trades seen in that second): the
        backfill's seam."""
        self.resubscriptions = 0
        """How many streams were requested again after 1101/1102/2104 (for tests, health)."""
        self._handlers: dict[str, Callable[[list[str]], None]] = {
            "1": self._tick_price,
            "2": self._tick_size,
            "4": self._error_fields,
            "12": self._depth,
            "58": self._market_data_type,
            "98": self._historical_ticks,
            "99": self._tick_by_tick,
        }

    # -- the session ----------------------------------------------------------------------
    async def connect(self, endpoint: str) -> None:
        """Connect to TWS at ``endpoint``: handshake, startApi, ib_async's start-up sync."""
        host, port = split_host_port(endpoint)
        self._endpoint = endpoint
        exchange = self._sink.exchange
        ib = IB()
        ib.RaiseRequestErrors = False
        ib.errorEvent += self._on_connect_error
        self._ib = ib
        self._health = ConnectionHealth(connected=False, endpoint=endpoint)
        options = self._options
        ib.disconnectedEvent += self._on_connect_lost
        try:
            with anyio.CancelScope() as self._connect_scope:
                await ib.connectAsync(
                    host,
                    port,
                    clientId=options.client_id,
                    timeout=options.connect_timeout_s,
                    readonly=True,  # the plugin never places orders
                    account=options.account,
                    fetchFields=StartupFetch.POSITIONS | StartupFetch.ACCOUNT_UPDATES,
                )
        except (OSError, TimeoutError, ConnectionError) as exc:
            ib.disconnect()
            if self._clash:
                raise self._clash_error() from None
            if isinstance(exc, TimeoutError):
                reason = "no answer in time"
            else:
                reason = connect_failure(exc) if isinstance(exc, OSError) else str(exc)
            raise ConnectionFailed(
                f"cannot connect to TWS / IB Gateway: {reason or type(exc).__name__}",
                exchange=exchange,
                endpoint=endpoint,
                hint="check that TWS or IB Gateway runs with the API socket enabled on this port",
            ) from exc
        finally:
            ib.errorEvent -= self._on_connect_error
            ib.disconnectedEvent -= self._on_connect_lost
        if self._clash or not ib.isConnected():
            ib.disconnect()
            raise (
                self._clash_error()
                if self._clash
                else ConnectionFailed(
                    "TWS closed the connection during start-up",
                    exchange=exchange,
                    endpoint=endpoint,
                )
            )
        # from here on, the socket's bytes go through our framing first
        client: Any = ib.client
        client.conn.hasData -= client._onSocketHasData
        client.conn.hasData += self._on_data
        client.conn.disconnected += self._on_disconnected
        self._codec.server_version = client.serverVersion()
        rest, client._data = client._data, b""
        if rest:
            self._on_data(rest)
        client.reqMarketDataType(MARKET_DATA_TYPE_CODES[options.market_data_type])
        self._health.connected = True
        self._health.detail = f"server version {client.serverVersion()}"

    def _clash_error(self) -> ConfigError:
        cid = self._options.client_id
        return ConfigError(
            f"client id {cid} is already in use at this TWS (IB error 326)",
            exchange=self._sink.exchange,
            endpoint=self._endpoint,
            hint=f"set options.client_id to an id no other API client of this TWS uses (not {cid})",
        )

    def _on_connect_lost(self) -> None:
        if self._connect_scope is not None:  # TWS hung up during start-up: do not wait it out
            self._connect_scope.cancel()

    def _on_connect_error(self, req_id: int, code: int, text: str, contract: object) -> None:
        if code == CLIENT_ID_IN_USE:
            self._clash = True
            if self._connect_scope is not None:
                self._connect_scope.cancel()
        elif code in FARM_CODES:
            self._farm(code, text)

    async def run(self) -> None:
        """Run queued jobs (resubscriptions, backfills) until the session ends."""
        try:
            while not self._ended.is_set():
                jobs, self._jobs = self._jobs, []
                for job in jobs:
                    result = job()
                    if asyncio.iscoroutine(result):
                        await result
                if not self._jobs:
                    await self._wait_wake()
        finally:
            self._health.connected = False
        if self._closing:
            return
        raise ConnectionFailed(
            f"the connection to TWS was lost{f': {self._failure}' if self._failure else ''}",
            exchange=self._sink.exchange,
            endpoint=self._endpoint,
        )

    async def _wait_wake(self) -> None:
        """Until a job is queued or the session ends."""
        ended = self._ended
        async with anyio.create_task_group() as tg:

            async def on_end() -> None:
                await ended.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(on_end)
            await self._wake.wait()
            tg.cancel_scope.cancel()

    def _job(self, job: Callable[[], Any]) -> None:
        self._jobs.append(job)
        self._wake.set()

    def _on_disconnected(self, msg: str) -> None:
        self._failure = ConnectionError(msg) if msg else None
        self._ended.set()

    async def close(self) -> None:
        """Disconnect (idempotent); ``run()`` returns."""
        self._closing = True
        self._health.connected = False
        if self._ib is not None:
            self._ib.disconnect()
        self._ended.set()

    def health(self) -> ConnectionHealth:
        """Connected, endpoint, activity; ``detail`` has farms, blindness, granted types."""
        farms = ", ".join(f"{k} {v}" for k, v in sorted(self._farms.items()))
        parts = [p for p in (self._blind_reason, farms and f"farms: {farms}") if p]
        delayed = sorted(s.symbol for s in self._streams.values() if s.granted not in (0, 1))
        if delayed:
            parts.append(f"not live: {', '.join(delayed)}")
        if parts:
            self._health.detail = "; ".join(parts)
        return self._health

    def granted(self) -> dict[str, str]:
        """Each subscribed symbol's market-data type as IB granted it (``live``,
        ``frozen``, ``delayed``, ``delayed_frozen``; ``unknown`` before IB said)."""
        return {
            s.symbol: MARKET_DATA_TYPE_NAMES.get(s.granted, "unknown")
            for s in self._streams.values()
        }

    def farms(self) -> dict[str, str]:
        """Farm name -> ``ok`` or ``broken``, as TWS last reported it."""
        return dict(self._farms)

    async def probe(self) -> None:
        """``reqCurrentTime``: TWS answers ``currentTime``."""
        if self._ib is not None and self._ib.isConnected():
            self._api().reqCurrentTime()

    # -- subscriptions ----------------------------------------------------------------------
    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Qualify (once) and request every symbol; ``SubscriptionError`` names those
        refused, by IB or by a limit planned before asking IB."""
        refused: dict[str, str] = {}
        wanted = [s for s in dict.fromkeys(symbols) if s not in self._symbols]
        for symbol in wanted:
            why = self._over_limit(symbol)
            if why:
                refused[symbol] = why
                continue
            try:
                contract = await self._qualify(symbol)
            except SubscriptionError as exc:
                refused.update(exc.refused)
                continue
            wait = self._tbt_wait(symbol)
            if wait > 0:  # IB takes one tick-by-tick request per instrument per 15 s
                await anyio.sleep(wait)
            self._request(symbol, contract)
        await self._settle([s for s in wanted if s not in refused])
        for symbol in wanted:
            states = self._symbols.get(symbol, [])
            why = next((s.refused for s in states if s.refused), "")
            if why:
                self._cancel_symbol(symbol)
                refused[symbol] = why
        if refused:
            raise SubscriptionError(
                "IB refused " + "; ".join(f"{s}: {r}" for s, r in refused.items()),
                refused=refused,
                exchange=self._sink.exchange,
                endpoint=self._endpoint,
                hint="check the symbols' contracts (options.contracts) and the account's "
                "market-data subscriptions",
            )

    def _over_limit(self, symbol: str) -> str:
        o = self._options
        if o.market_data == "top":
            used = sum(1 for s in self._streams.values() if s.kind == "top")
            if used + 1 > o.max_market_data_lines:
                return (
                    f"over the limit of {o.max_market_data_lines} market-data lines "
                    "(options.max_market_data_lines)"
                )
        elif o.market_data == "tick_by_tick":
            used = sum(1 for s in self._streams.values() if s.kind in ("AllLast", "BidAsk"))
            if used + len(o.tick_by_tick_types) > o.max_tick_by_tick:
                return (
                    f"over the limit of {o.max_tick_by_tick} tick-by-tick streams "
                    "(options.max_tick_by_tick)"
                )
        else:
            used = sum(1 for s in self._streams.values() if s.kind == "depth")
            if used + 1 > o.max_depth:
                return f"over the limit of {o.max_depth} depth subscriptions (options.max_depth)"
        return ""

    async def _qualify(self, symbol: str) -> Contract:
        """The contract with its conId, asked of IB once per symbol (then cached)."""
        cached = self._contracts.get(symbol)
        if cached is not None:
            return cached
        ib = self._require()
        spec = self._options.contracts.get(symbol)
        asked = _contract(symbol, spec)
        req_id = _any(ib.client).getReqId()
        future = _any(ib.wrapper).startReq(req_id, asked)
        _any(ib.client).reqContractDetails(req_id, asked)
        try:
            with anyio.fail_after(self._options.request_timeout_s):
                details = await future
        except TimeoutError:
            raise SubscriptionError(
                f"{symbol}: no contract details within {self._options.request_timeout_s:g} s",
                refused={symbol: "contract lookup timed out"},
                exchange=self._sink.exchange,
                endpoint=self._endpoint,
            ) from None
        if len(details) != 1:
            code, text = self._errors.pop(req_id, (200, ""))
            why = REFUSALS.get(code, f"IB error {code}") if details == [] else ""
            why = why or f"ambiguous contract ({len(details)} matches): add it to options.contracts"
            raise SubscriptionError(
                f"{symbol}: {why}{f': {text}' if text else ''}",
                refused={symbol: why},
                exchange=self._sink.exchange,
                endpoint=self._endpoint,
            )
        contract: Contract = details[0].contract
        self._contracts[symbol] = contract
        return contract

    def _request(self, symbol: str, contract: Contract) -> None:
        """Send this symbol's market-data requests, each with a fresh request id."""
        ib = self._require()
        o = self._options
        states: list[StreamState] = []
        if o.market_data == "top":
            req_id = _any(ib.client).getReqId()
            states.append(StreamState(req_id, "top", symbol))
            _any(ib.client).reqMktData(req_id, contract, "", False, False, [])
        elif o.market_data == "tick_by_tick":
            self._tbt_times[symbol] = time.monotonic()
            for kind in o.tick_by_tick_types:
                req_id = _any(ib.client).getReqId()
                states.append(StreamState(req_id, kind, symbol))
                _any(ib.client).reqTickByTickData(req_id, contract, kind, 0, False)
        else:
            req_id = _any(ib.client).getReqId()
            states.append(StreamState(req_id, "depth", symbol))
            _any(ib.client).reqMktDepth(req_id, contract, o.depth_rows, False, [])
        now = time.monotonic_ns()
        for st in states:
            st.last_ns = now
            self._streams[st.req_id] = st
        self._symbols[symbol] = states

    async def _settle(self, symbols: list[str]) -> None:
        """IB acknowledges no subscription: wait until each stream answered (data or an
        error), at most ``subscribe_settle_s``."""
        with anyio.move_on_after(self._options.subscribe_settle_s):
            while not all(st.answered for s in symbols for st in self._symbols.get(s, [])):
                await self._answered.wait()

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Cancel the symbols' requests (no error for one not subscribed)."""
        for symbol in symbols:
            self._cancel_symbol(symbol)

    def _cancel_symbol(self, symbol: str) -> None:
        ib = self._ib
        for st in self._symbols.pop(symbol, []):
            self._streams.pop(st.req_id, None)
            if ib is None or not ib.isConnected() or st.refused:
                continue
            if st.kind == "top":
                _any(ib.client).cancelMktData(st.req_id)
            elif st.kind == "depth":
                _any(ib.client).cancelMktDepth(st.req_id, False)
            else:
                _any(ib.client).cancelTickByTickData(st.req_id)

    def _resubscribe(self, symbols: list[str], why: str) -> None:
        """Request these symbols again with fresh request ids (cached contracts)."""
        for symbol in symbols:
            contract = self._contracts.get(symbol)
            if contract is None or symbol not in self._symbols:
                continue
            for st in self._symbols.pop(symbol):
                self._streams.pop(st.req_id, None)
            wait = self._tbt_wait(symbol)
            if wait > 0:
                # IB takes one tick-by-tick request per instrument per 15 s: wait it out
                self._symbols[symbol] = []
                self._job(functools.partial(self._later, wait, symbol, contract))
                continue
            self._request(symbol, contract)
            self.resubscriptions += 1
        log.info("[%s] requested %s again: %s", self._sink.exchange, symbols, why)

    def _tbt_wait(self, symbol: str) -> float:
        if self._options.market_data != "tick_by_tick":
            return 0.0
        last = self._tbt_times.get(symbol)
        if last is None:
            return 0.0
        return last + self._options.tick_by_tick_interval_s - time.monotonic()

    async def _later(self, wait: float, symbol: str, contract: Contract) -> None:
        await anyio.sleep(wait)
        if symbol in self._symbols and not self._symbols[symbol]:
            self._request(symbol, contract)
            self.resubscriptions += 1

    def _api(self) -> Any:
        """ib_async's client (untyped) of the live session."""
        return _any(self._require().client)

    def _require(self) -> IB:
        if self._ib is None or not self._ib.isConnected():
            raise ConnectionFailed(
                "not connected to TWS", exchange=self._sink.exchange, endpoint=self._endpoint
            )
        return self._ib

    # -- reading ----------------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        """One socket read: counted, framed, each frame handled or passed to ib_async."""
        health = self._health
        health.bytes_received += len(data)
        health.last_activity_ns = self._mono_recv = time.monotonic_ns()
        self._ts_recv = time.time_ns()  # once per buffer
        ib = self._ib
        if ib is None:
            return
        wrapper: Any = ib.wrapper
        wrapper.tcpDataArrived()
        decoder: Any = _any(ib.client).decoder
        handlers = self._handlers
        codec_ = self._codec
        codec_.receive_data(data)
        while True:
            try:
                fields = codec_.next_fields()
            except DecodeError as exc:
                self._sink.malformed(str(exc))
                continue
            if isinstance(fields, NeedData):
                break
            handler = handlers.get(fields[0])
            try:
                if handler is not None:
                    handler(fields)
                else:
                    decoder.interpret(fields)
            except (MalformedNumber, DecodeError, ValueError, IndexError) as exc:
                self._sink.malformed(f"message {fields[0]}: {exc}")
        wrapper.tcpDataProcessed()
        if self._sink.backpressured and not self._paused:
            self._pause()

    def _pause(self) -> None:
        """Stop reading the socket while a ``block`` stream is full."""
        ib = self._ib
        transport: Any = _any(ib.client).conn.transport if ib is not None else None
        if transport is None:
            return
        self._paused = True
        transport.pause_reading()

        def wake() -> None:
            self._paused = False
            if ib is not None and _any(ib.client).conn.transport is transport:
                transport.resume_reading()

        self._sink.add_capacity_waiter(wake)

    def _seen(self, st: StreamState) -> None:
        now = self._mono_recv
        gap = now - st.last_ns
        st.interval_ns = gap if not st.interval_ns else 0.8 * st.interval_ns + 0.2 * gap
        st.last_ns = now
        self._last_data_ns = self._ts_recv
        if not st.answered:
            st.answered = True
            self._answered.set()

    def _tick_price(self, f: list[str]) -> None:
        p = codec.parse_tick_price(f)
        st = self._streams.get(p.req_id)
        if st is None:
            return
        self._seen(st)
        tick_type = DELAYED_TICKS.get(p.tick_type, p.tick_type)
        if p.price in ("", "-1", "-1.0") or p.price.startswith("-1"):
            return  # IB's "no value"
        ts = self._ts_recv
        if tick_type == TickType.LAST:
            self._sink.trade_text(st.symbol, p.price, p.size or "0", Side.NONE, ts, ts)
            self._count_trade(st.symbol, ts // 1_000_000_000)
            return
        if tick_type == TickType.BID:
            st.bid, st.bid_size = p.price, p.size
        elif tick_type == TickType.ASK:
            st.ask, st.ask_size = p.price, p.size
        else:
            return
        self._quote(st, ts)

    def _tick_size(self, f: list[str]) -> None:
        s = codec.parse_tick_size(f)
        st = self._streams.get(s.req_id)
        if st is None:
            return
        self._seen(st)
        tick_type = DELAYED_TICKS.get(s.tick_type, s.tick_type)
        if tick_type == TickType.BID_SIZE and s.size != st.bid_size:
            st.bid_size = s.size
        elif tick_type == TickType.ASK_SIZE and s.size != st.ask_size:
            st.ask_size = s.size
        else:
            return  # the size of a price just sent, or a last size (with its trade)
        self._quote(st, self._ts_recv)

    def _count_trade(self, symbol: str, second: int) -> None:
        last = self._last_trade.get(symbol)
        if last is not None and last[0] == second:
            self._last_trade[symbol] = (second, last[1] + 1)
        else:
            self._last_trade[symbol] = (second, 1)

    def _quote(self, st: StreamState, ts: int) -> None:
        if st.bid and st.ask:
            self._sink.quote_text(
                st.symbol, st.bid, st.bid_size or "0", st.ask, st.ask_size or "0", ts, ts
            )

    def _tick_by_tick(self, f: list[str]) -> None:
        # the hot path of tick_by_tick: the fields read in place (codec.parse_tick_by_tick
        # is the same layout, as a value, for tests and tools)
        st = self._streams.get(int(f[1]))
        if st is None:
            return
        if len(f) < 9:
            raise DecodeError(f"tickByTick: {len(f)} fields, expected 9")
        self._seen(st)
        kind = f[2]
        second = int(f[3])
        if kind == "2" or kind == "1":  # AllLast, Last: time, price, size, mask, ...
            self._sink.trade_text(
                st.symbol, f[4], f[5], Side.NONE, second * 1_000_000_000, self._ts_recv
            )
            self._count_trade(st.symbol, second)
        elif kind == "3":  # BidAsk: time, bid, ask, bid size, ask size, mask
            self._sink.quote_text(
                st.symbol, f[4], f[6], f[5], f[7], second * 1_000_000_000, self._ts_recv
            )

    def _depth(self, f: list[str]) -> None:
        d = codec.parse_depth(f)
        st = self._streams.get(d.req_id)
        if st is None:
            return
        self._seen(st)
        rows = st.bids if d.side == DEPTH_BID else st.asks
        side = Side.BUY if d.side == DEPTH_BID else Side.SELL
        before = dict(rows)
        pos = d.position
        if d.operation == DEPTH_DELETE:
            if pos < len(rows):
                del rows[pos]
        else:
            row = (parse_fixed(d.price), parse_fixed(d.size))
            if d.operation == DEPTH_INSERT:
                rows.insert(min(pos, len(rows)), row)
            elif pos < len(rows):
                rows[pos] = row
            else:
                rows.append(row)
        ts = self._ts_recv
        if st.rebuilding:
            rows_wanted = self._options.depth_rows
            if len(st.bids) >= rows_wanted and len(st.asks) >= rows_wanted:
                st.rebuilding = False
                self._sink.book_snapshot(st.symbol, tuple(st.bids), tuple(st.asks), ts, ts)
            return
        after = dict(rows)
        for price in before.keys() - after.keys():
            self._sink.book_update(st.symbol, side, price, 0, ts, ts)
        for price, size in after.items():
            if before.get(price) != size:
                self._sink.book_update(st.symbol, side, price, size, ts, ts)

    def _market_data_type(self, f: list[str]) -> None:
        m = codec.parse_market_data_type(f)
        st = self._streams.get(m.req_id)
        if st is None:
            return
        self._seen(st)
        if m.data_type != st.granted:
            st.granted = m.data_type
            name = MARKET_DATA_TYPE_NAMES.get(m.data_type, str(m.data_type))
            if m.data_type == 1:
                self._sink.symbol_ok(st.symbol)
            else:
                # delayed data is never passed off as live
                self._sink.symbol_error(st.symbol, f"IB grants {name} market data, not live")

    def _historical_ticks(self, f: list[str]) -> None:
        h = codec.parse_historical_ticks_last(f)
        if h.req_id in self._history_done:
            self._history[h.req_id] = h
            self._history_done[h.req_id].set()

    # -- IB's codes -------------------------------------------------------------------------
    def _error_fields(self, f: list[str]) -> None:
        e = codec.parse_error(f)
        self._on_error(e.req_id, e.code, e.text)
        ib = self._ib
        if ib is not None and e.req_id in _any(ib.wrapper)._futures:
            _any(ib.client).decoder.interpret(f)  # ends ib_async's own request (contract details)

    def _on_error(self, req_id: int, code: int, text: str) -> None:
        st = self._streams.get(req_id)
        if st is not None:
            self._stream_error(st, code, text)
            return
        if req_id in self._history_done:
            self._history[req_id] = codec.HistoricalTicksLast(req_id, [], True)
            self._history_done[req_id].set()
            self._sink.venue_error(code, text)
            return
        if req_id >= 0:
            self._errors[req_id] = (code, text)
        if code == 1100:
            self._lost(f"IB 1100: {text}")
        elif code == 1101:
            self._restored(data_lost=True)
        elif code == 1102:
            self._restored(data_lost=False)
        elif code in FARM_CODES:
            self._farm(code, text)
        elif code == CLIENT_ID_IN_USE:
            self._clash = True
            self._sink.venue_error(code, text)
        elif req_id < 0 or code < 2100 or code > 2199:
            self._sink.venue_error(code, text)

    def _stream_error(self, st: StreamState, code: int, text: str) -> None:
        if code in REFUSALS:
            st.refused = REFUSALS[code]
            st.answered = True
            self._answered.set()
            if st.symbol in self._symbols and all(s.refused for s in self._symbols[st.symbol]):
                self._sink.symbol_error(st.symbol, st.refused)
        elif code == DEPTH_RESET:
            st.bids.clear()
            st.asks.clear()
            st.rebuilding = True  # a BookSnapshot once both sides are whole again
            self._sink.book_clear(st.symbol, self._ts_recv, self._ts_recv, 0, "IB 317: depth reset")
        elif code == DELAYED_NOTICE:
            st.granted = st.granted or 3
            self._sink.symbol_error(st.symbol, f"IB 10167: {text}")
        elif code == COMPETING_SESSION:
            for s in self._symbols:
                self._sink.symbol_error(s, f"IB 10197: {text}")
        else:
            self._sink.venue_error(code, f"{st.symbol}: {text}")

    def _lost(self, reason: str) -> None:
        """1100: the socket stays up, the data does not flow: blind from the last data."""
        if not self._blind_since:
            self._blind_since = self._last_data_ns or time.time_ns()
        self._blind_reason = reason
        self._health.connected = False
        for symbol in self._symbols:
            self._sink.symbol_error(symbol, reason)

    def _restored(self, data_lost: bool) -> None:
        code = 1101 if data_lost else 1102
        start = self._blind_since or self._last_data_ns or time.time_ns()
        self._blind_since, self._blind_reason = 0, ""
        self._health.connected = True
        symbols = list(self._symbols)
        for symbol in symbols:
            self._mark_ok(symbol)
        what = "data lost, resubscribed" if data_lost else "data maintained"
        if data_lost and self._options.backfill:
            # the seams now, before any new trade moves them
            seams = {s: self._last_trade[s] for s in symbols if s in self._last_trade}
            self._job(
                functools.partial(self._backfill_then_resubscribe, symbols, start, code, seams)
            )
            return
        self._sink.gap(
            "", start, time.time_ns(), f"blind: TWS lost IB (1100), restored ({code}): {what}"
        )
        if data_lost:
            self._resubscribe(symbols, f"IB {code}: connectivity restored, data lost")
        else:
            self._verify_later(f"IB {code}")

    def _mark_ok(self, symbol: str) -> None:
        """A symbol's trouble is over; one IB grants delayed data stays marked so."""
        for st in self._symbols.get(symbol, []):
            if st.granted not in (0, 1):
                name = MARKET_DATA_TYPE_NAMES.get(st.granted, str(st.granted))
                self._sink.symbol_error(symbol, f"IB grants {name} market data, not live")
                return
        self._sink.symbol_ok(symbol)

    def _farm(self, code: int, text: str) -> None:
        kind, ok = FARM_CODES[code]
        farm = text.rpartition(":")[2].strip() or kind
        was = self._farms.get(farm)
        self._farms[farm] = "ok" if ok else "broken"
        if kind != "market":
            return
        if not ok:
            if not self._farm_blind_since:
                self._farm_blind_since = self._last_data_ns or time.time_ns()
            for symbol in self._symbols:
                self._sink.symbol_error(symbol, f"IB {code}: {text}")
        elif was == "broken" and self._farm_blind_since:
            start, self._farm_blind_since = self._farm_blind_since, 0
            for symbol in self._symbols:
                self._mark_ok(symbol)
            self._sink.gap(
                "",
                start,
                time.time_ns(),
                f"blind: market data farm {farm} broken (2103), OK (2104)",
            )
            self._verify_later(f"IB {code}")

    def _verify_later(self, why: str) -> None:
        """After data kept (1102, 2104): a stream silent past its usual inter-arrival is
        requested again; the others are left alone."""
        mark = time.monotonic_ns()
        intervals = [st.interval_ns for st in self._streams.values() if st.interval_ns]
        usual = max(intervals) / 1e9 if intervals else MIN_SILENCE_S
        wait = min(MAX_SILENCE_S, max(MIN_SILENCE_S, SILENCE_FACTOR * usual))

        async def check() -> None:
            await anyio.sleep(wait)
            silent = sorted({st.symbol for st in self._streams.values() if st.last_ns < mark})
            if silent:
                self._resubscribe(silent, f"{why}: silent for {wait:.2f} s after the restore")

        self._job(check)

    # -- backfill ---------------------------------------------------------------------------
    async def _backfill_then_resubscribe(
        self, symbols: list[str], start: int, code: int, seams: dict[str, tuple[int, int]]
    ) -> None:
        """After 1101 with ``backfill``: first the trades since the last one seen, from
        ``reqHistoricalTicks`` (TRADES, 1000 a page, within IB's 60 requests / 10 min),
        published; then the streams requested again. The Gap then covers only what was
        not recovered: with trades alone (tick-by-tick ``AllLast``), the seam from the
        history's end to the new streams (and a symbol's whole window if its history
        fell short); with quotes or a book, which IB's history cannot give back, the
        whole window, saying how many trades were recovered."""
        covered_to = time.time_ns()  # the history answers up to about now
        recovered = 0
        short: list[str] = []
        for symbol in symbols:
            contract = self._contracts.get(symbol)
            if contract is None:
                continue
            seam = seams.get(symbol) or (start // 1_000_000_000, 0)
            published, complete = await self._backfill(symbol, contract, seam)
            recovered += published
            if not complete:
                short.append(symbol)
        self._resubscribe(symbols, f"IB {code}: connectivity restored, data lost")
        now = time.time_ns()
        head = f"blind: TWS lost IB (1100), restored ({code}): data lost, resubscribed"
        o = self._options
        if o.market_data == "tick_by_tick" and o.tick_by_tick_types == ["AllLast"]:
            self._sink.gap(
                "", covered_to, now,
                f"{head}; {recovered} trades recovered by backfill up to the Gap",
            )  # fmt: skip
            for symbol in short:
                self._sink.gap(symbol, start, now, f"{head}; the backfill fell short")
        else:
            self._sink.gap(
                "", start, now,
                f"{head}; {recovered} trades recovered by backfill, quotes and book not",
            )  # fmt: skip

    async def _backfill(
        self, symbol: str, contract: Contract, seam: tuple[int, int]
    ) -> tuple[int, bool]:
        """Publish the trades after ``seam`` (the second of the last trade seen and how
        many of that second were seen: IB's history has whole seconds, so those are
        skipped once each, by count). Returns how many, and whether the history was
        read to its end."""
        ib = self._require()
        seam_second, seen = seam
        published = 0
        for _ in range(self._options.backfill_pages):
            now = time.monotonic()
            self._history_times = [t for t in self._history_times if now - t < 600]
            if len(self._history_times) >= 60:
                return published, False  # IB's historical pacing: never a violation
            self._history_times.append(now)
            req_id = _any(ib.client).getReqId()
            done = self._history_done[req_id] = anyio.Event()
            stamp = datetime.fromtimestamp(seam_second, UTC).strftime("%Y%m%d-%H:%M:%S")
            _any(ib.client).reqHistoricalTicks(
                req_id, contract, stamp, "", HISTORY_PAGE, "TRADES", 0, False, []
            )
            with anyio.move_on_after(self._options.request_timeout_s):
                await done.wait()
            self._history_done.pop(req_id, None)
            page = self._history.pop(req_id, None)
            if page is None:
                return published, False
            ts = time.time_ns()
            skip = seen
            fresh = 0
            for t in page.ticks:
                if t.time < seam_second:
                    continue
                if t.time == seam_second and skip > 0:
                    skip -= 1
                    continue
                self._sink.trade_text(
                    symbol, t.price, t.size, Side.NONE, t.time * 1_000_000_000, ts
                )
                fresh += 1
                if t.time == seam_second:
                    seen += 1
                else:
                    seam_second, seen = t.time, 1
            published += fresh
            if len(page.ticks) < HISTORY_PAGE:
                return published, True
            if not fresh:
                return published, False  # a second of more than a page: cannot go on
        return published, False
