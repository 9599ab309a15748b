"""A loopback TWS: the TWS API socket protocol that the real ``ib_async`` connects to.

``hub sim ibkr``, ``hub demo`` and the plugin's tests run it. It speaks the subset of
the TWS API in sdk-docs/protocols/tws-simulator.md: the ``API\\0`` handshake and
version negotiation, ``startApi`` -> ``nextValidId`` + ``managedAccounts`` + farm status,
answers to every start-up request ib_async makes, contract details (error 200 for an
unknown contract), ``reqMktData`` -> ``tickPrice``/``tickSize``, ``reqTickByTickData``
-> ``tickByTick`` (AllLast, BidAsk), ``reqMktDepth`` -> ``updateMktDepth`` by row,
``reqHistoricalTicks`` TRADES, the cancels and ``reqMarketDataType``, all driven by the
kit's ``MarketModel``. Its faults are the kit's ``VenueFaults`` plus IB's own codes
(1100/1101/1102, farm codes, 317, 326, 354, 10167, 10190, 100, 10197...).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import anyio

from hub_core.plugin import PRICE_SCALE, ExchangeConfig, NeedData, format_fixed
from hub_core.simulation import (
    ClientLink,
    Instrument,
    LoopbackVenue,
    MarketModel,
    MarketUpdate,
    OptionParser,
    VenueClient,
    parse_bool,
    parse_list,
    simulator_options,
)
from hub_plugin_ibkr import codec
from hub_plugin_ibkr.codec import (
    DEPTH_ASK,
    DEPTH_BID,
    DEPTH_DELETE,
    DEPTH_INSERT,
    DEPTH_UPDATE,
    ClientHello,
    ContractFields,
    HistoricalTick,
    Malformed,
    Message,
    Out,
    ServerCodec,
    TickType,
)

DEFAULT_SYMBOLS: Final = ("AAPL", "MSFT")
DEFAULT_ACCOUNT: Final = "DU1234567"
TICK: Final = PRICE_SCALE // 100
FIRST_CON_ID: Final = 265_598
MARKET_FARM: Final = "usfarm"
HISTORICAL_FARM: Final = "ushmds"
SECDEF_FARM: Final = "secdefil"
FARM_CODES: Final = {
    # farm kind -> (broken, OK) codes
    "market": (2103, 2104),
    "historical": (2105, 2106),
    "secdef": (2157, 2158),
}
OVERSIZED_PAD: Final = 1024 * 1024 + 4096  # past the client's default frame bound
HISTORICAL_PACING: Final = (60, 600.0)  # requests per seconds
MESSAGE_RATE: Final = 50  # client messages per second before error 100

MSG_CONNECTIVITY_LOST: Final = "Connectivity between IB and Trader Workstation has been lost."
MSG_RESTORED_LOST: Final = (
    "Connectivity between IB and Trader Workstation has been restored - data lost."
)
MSG_RESTORED_KEPT: Final = (
    "Connectivity between IB and Trader Workstation has been restored - data maintained."
)


def farm_kind(farm: str) -> str:
    """``market``, ``historical`` or ``secdef`` for an IB farm name."""
    if "hmds" in farm:
        return "historical"
    if farm.startswith("secdef"):
        return "secdef"
    return "market"


@dataclass
class SimContract:
    """A contract the simulated TWS knows; ``symbol`` is the market model's symbol."""

    symbol: str
    ib_symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    last_trade_date: str = ""
    local_symbol: str = ""
    primary_exchange: str = "NASDAQ"
    multiplier: str = ""
    con_id: int = 0

    def matches(self, c: ContractFields) -> bool:
        """Whether a request's contract names this one (IB's matching, simplified)."""
        if c.con_id:
            return c.con_id == self.con_id
        if c.local_symbol and c.local_symbol != self.local_symbol:
            return False
        if c.symbol and c.symbol != self.ib_symbol:
            return False
        if not c.symbol and not c.local_symbol:
            return False
        if c.sec_type and c.sec_type != self.sec_type:
            return False
        if c.currency and c.currency != self.currency:
            return False
        if c.last_trade_date and not self.last_trade_date.startswith(c.last_trade_date):
            return False
        return not c.exchange or c.exchange in (self.exchange, "SMART")


@dataclass
class Stream:
    """One market-data request of a session."""

    req_id: int
    kind: str  # "top", "AllLast", "BidAsk", "depth"
    symbol: str
    delayed: bool = False
    rows: int = 5
    bids: list[tuple[int, int]] = field(default_factory=list)
    asks: list[tuple[int, int]] = field(default_factory=list)
    top: tuple[int, int, int, int] = (0, 0, 0, 0)
    skip_next_trade: bool = False


class TwsSession(VenueClient[str]):
    """One API client: its negotiated version, client id and market-data streams."""

    def __init__(self, venue: LoopbackVenue[Any], link: ClientLink) -> None:
        super().__init__(venue, link)
        self.codec = ServerCodec()
        self.version = 0
        self.client_id: int | None = None
        self.market_data_type = 1
        self.streams: dict[int, Stream] = {}
        self.requests: list[list[str]] = []
        """Every request the client sent (fields), for tests."""
        self.message_times: deque[float] = deque()
        self.historical_times: deque[float] = deque()

    def send_fields(self, data: bytes) -> None:
        """Queue one framed message."""
        self.send(data)

    def error(self, req_id: int, code: int, text: str) -> None:
        self.send(codec.encode_error(req_id, code, text))

    def refresh_symbols(self) -> None:
        """``subscriptions`` (what the market clock steps) from the live streams."""
        self.subscriptions = {s.symbol for s in self.streams.values()}


class TwsSimulator(LoopbackVenue[TwsSession]):
    """The simulated TWS / IB Gateway.

    ``contracts`` maps a symbol to the ``SimContract`` fields (``ib_symbol``,
    ``sec_type``, ``exchange``, ``last_trade_date``...); a symbol not listed is a US
    stock on SMART. ``live_entitled`` False: live requests get 10167 and delayed data.
    ``max_lines`` / ``max_tick_by_tick`` / ``max_depth`` are IB's account limits.
    """

    name = "ibkr"

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        rate: float = 100.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 7,
        contracts: Mapping[str, Mapping[str, str]] | None = None,
        accounts: Sequence[str] = (DEFAULT_ACCOUNT,),
        live_entitled: bool = True,
        max_lines: int = 100,
        max_tick_by_tick: int = 5,
        max_depth: int = 3,
        enforce_message_rate: bool = True,
        client_ids_in_use: Sequence[int] = (),
    ) -> None:
        market = MarketModel([Instrument(s, 100 * PRICE_SCALE, TICK) for s in symbols], seed=seed)
        super().__init__(market, rate, host=host, port=port)
        self.accounts = list(accounts)
        self.live_entitled = live_entitled
        self.max_lines = max_lines
        self.max_tick_by_tick = max_tick_by_tick
        self.max_depth = max_depth
        self.enforce_message_rate = enforce_message_rate
        self.client_ids_in_use = set(client_ids_in_use)
        """Client ids another (unseen) API client holds: ``startApi`` with one gets 326."""
        self.contracts: dict[str, SimContract] = {}
        for i, s in enumerate(symbols):
            spec: dict[str, Any] = dict((contracts or {}).get(s, {}))
            spec.setdefault("ib_symbol", s)
            spec.setdefault("local_symbol", s)
            c = SimContract(s, **spec)
            c.con_id = c.con_id or FIRST_CON_ID + i
            self.contracts[s] = c
        self.denied: dict[str, int] = {}
        """Symbol -> the error code its data requests get (354, 10089, 10090...)."""
        self.connected_to_ib = True
        """False between ``lose_connectivity`` and ``restore_connectivity``."""
        self.broken_farms: set[str] = set()
        self.trade_log: dict[str, list[tuple[int, int, int]]] = {s: [] for s in symbols}
        """Every trade with its time: ``(ts ns, price, size)`` (what reqHistoricalTicks serves)."""
        self.next_order_id = 1

    # -- the handle the tests use ---------------------------------------------------------
    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """The trades, as a TWS API client can see them: the wire carries no aggressor,
        so every side is ``N``."""
        return [(p, s, "N") for p, s, _ in super().sent_trades(symbol)]

    def streams(self, kind: str | None = None) -> list[Stream]:
        """Every live stream of every session (of ``kind``)."""
        return [
            s
            for c in self.connected()
            for s in c.streams.values()
            if kind is None or s.kind == kind
        ]

    def requests_of(self, msg_id: int) -> list[list[str]]:
        """Every request with this id any session sent, in order."""
        return [r for c in self.connected() for r in c.requests if int(r[0]) == msg_id]

    # -- the wire, server side ------------------------------------------------------------
    def new_client(self, link: ClientLink) -> TwsSession:
        return TwsSession(self, link)

    async def serve_client(self, client: TwsSession) -> None:
        while not client.closing and (data := await client.receive_bytes()):
            client.codec.receive_data(data)
            while True:
                event = client.codec.next_event()
                if isinstance(event, NeedData):
                    break
                if isinstance(event, Malformed):
                    if client.version == 0:
                        client.close()  # no handshake, no session
                        return
                    continue
                if isinstance(event, ClientHello):
                    self.hello(client, event)
                elif isinstance(event, Message):
                    self.on_request(client, event.fields)
                if _closing(client):  # a handler ended the session
                    return

    def hello(self, client: TwsSession, hello: ClientHello) -> None:
        version = codec.negotiate(hello.min_version, hello.max_version)
        if version is None:
            client.close()  # TWS hangs up on a client it cannot speak to
            return
        client.version = version
        now = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
        client.send(codec.encode_server_hello(version, now))

    def on_request(self, client: TwsSession, f: list[str]) -> None:
        client.requests.append(f)
        msg_id = int(f[0])
        if client.client_id is None:
            if msg_id == Out.START_API:
                self.start_api(client, int(f[2]))
            return
        if self.enforce_message_rate and self._over_rate(client):
            client.error(-1, 100, "Max rate of messages per second has been exceeded:max=50")
        handler = self._handlers.get(msg_id)
        if handler is not None:
            handler(self, client, f)

    def start_api(self, client: TwsSession, client_id: int) -> None:
        clash = client_id in self.client_ids_in_use or any(
            c.client_id == client_id and c.established for c in self.connected()
        )
        if clash or self.credentials_refused:
            client.error(
                -1,
                326,
                "Unable to connect as the client id is already in use. "
                "Retry with a unique client id.",
            )
            client.close()
            return
        client.client_id = client_id
        client.established = True
        client.send(codec.encode_next_valid_id(self.next_order_id))
        client.send(codec.encode_managed_accounts(self.accounts))
        for farm in (MARKET_FARM, HISTORICAL_FARM, SECDEF_FARM):
            if farm not in self.broken_farms:
                client.error(-1, FARM_CODES[farm_kind(farm)][1], self._farm_text(farm, ok=True))

    def _over_rate(self, client: TwsSession) -> bool:
        now = time.monotonic()
        times = client.message_times
        times.append(now)
        while times and now - times[0] > 1.0:
            times.popleft()
        return len(times) > MESSAGE_RATE

    # -- start-up requests ------------------------------------------------------------------
    def _positions(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_position_end())

    def _open_orders(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_open_order_end())

    def _completed_orders(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_completed_orders_end())

    def _account_updates(self, client: TwsSession, f: list[str]) -> None:
        if f[2] == "1":
            client.send(codec.encode_account_download_end(f[3]))

    def _account_updates_multi(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_account_update_multi_end(int(f[2])))

    def _executions(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_exec_details_end(int(f[2])))

    def _ids(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_next_valid_id(self.next_order_id))

    def _managed(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_managed_accounts(self.accounts))

    def _current_time(self, client: TwsSession, f: list[str]) -> None:
        client.send(codec.encode_current_time(int(time.time())))

    def _market_data_type(self, client: TwsSession, f: list[str]) -> None:
        client.market_data_type = int(f[2])

    # -- contracts --------------------------------------------------------------------------
    def lookup(self, c: ContractFields) -> SimContract | None:
        found = [k for k in self.contracts.values() if k.matches(c)]
        return found[0] if len(found) == 1 else None

    def _contract_details(self, client: TwsSession, f: list[str]) -> None:
        req_id = int(f[2])
        asked = ContractFields.parse(f, 3)
        found = self.lookup(asked)
        if found is None:
            client.error(req_id, 200, "No security definition has been found for the request")
            return
        shown = ContractFields(
            found.con_id, found.ib_symbol, found.sec_type, found.last_trade_date, "0", "",
            found.multiplier, found.exchange, found.primary_exchange, found.currency,
            found.local_symbol, found.ib_symbol,
        )  # fmt: skip
        client.send(
            codec.encode_contract_details(req_id, shown, found.con_id, "0.01", found.ib_symbol)
        )
        client.send(codec.encode_contract_details_end(req_id))

    def _data_contract(self, client: TwsSession, req_id: int, asked: ContractFields) -> str | None:
        """The symbol a data request is for, or None after answering it with its error."""
        found = self.lookup(asked)
        if found is None:
            client.error(req_id, 200, "No security definition has been found for the request")
            return None
        code = self.denied.get(found.symbol)
        if code is None and self.symbol_refused(found.symbol):
            code = 354
        if code is not None:
            client.error(req_id, code, _DENIED_TEXT.get(code, "Not entitled"))
            return None
        return found.symbol

    # -- market data requests ---------------------------------------------------------------
    def _mkt_data(self, client: TwsSession, f: list[str]) -> None:
        req_id = int(f[2])
        symbol = self._data_contract(client, req_id, ContractFields.parse(f, 3))
        if symbol is None:
            return
        lines = sum(1 for c in self.connected() for s in c.streams.values() if s.kind == "top")
        if lines >= self.max_lines:
            client.error(req_id, 101, f"Max number of tickers has been reached:{self.max_lines}")
            return
        delayed = client.market_data_type in (3, 4) or not self.live_entitled
        if delayed and client.market_data_type in (1, 2):
            client.error(
                req_id,
                10167,
                "Requested market data is not subscribed. Displaying delayed market data.",
            )
        stream = Stream(req_id, "top", symbol, delayed=delayed)
        client.send(codec.encode_market_data_type(req_id, 3 if delayed else 1))
        client.streams[req_id] = stream
        client.refresh_symbols()
        self._send_top(client, stream, self.market_book_top(symbol))

    def market_book_top(self, symbol: str) -> tuple[int, int, int, int]:
        assert self.market is not None
        return self.market.book(symbol).top()

    def _tick_by_tick(self, client: TwsSession, f: list[str]) -> None:
        req_id = int(f[1])
        symbol = self._data_contract(client, req_id, ContractFields.parse(f, 2))
        if symbol is None:
            return
        kind = f[14]
        if kind not in ("AllLast", "Last", "BidAsk"):
            client.error(req_id, 10185, f"Unsupported tick-by-tick type {kind}")
            return
        if not self.live_entitled:
            client.error(
                req_id, 10089, "Requested market data requires additional subscription for API."
            )
            return
        if len(self.streams("AllLast")) + len(self.streams("BidAsk")) >= self.max_tick_by_tick:
            client.error(req_id, 10190, "Max number of tick-by-tick requests has been reached.")
            return
        stream = Stream(req_id, "BidAsk" if kind == "BidAsk" else "AllLast", symbol)
        client.streams[req_id] = stream
        client.refresh_symbols()
        if stream.kind == "BidAsk":
            bid, bsz, ask, asz = self.market_book_top(symbol)
            client.send(
                codec.encode_tbt_bid_ask(
                    req_id, int(time.time()), format_fixed(bid), format_fixed(ask),
                    format_fixed(bsz), format_fixed(asz),
                )
            )  # fmt: skip
            stream.top = (bid, bsz, ask, asz)

    def _mkt_depth(self, client: TwsSession, f: list[str]) -> None:
        req_id = int(f[2])
        symbol = self._data_contract(client, req_id, ContractFields.parse(f, 3))
        if symbol is None:
            return
        if not self.live_entitled:
            client.error(
                req_id, 10089, "Requested market data requires additional subscription for API."
            )
            return
        if len(self.streams("depth")) >= self.max_depth:
            client.error(
                req_id,
                309,
                f"Max number ({self.max_depth}) of market depth requests has been reached",
            )
            return
        stream = Stream(req_id, "depth", symbol, rows=max(1, int(f[15] or 5)))
        client.streams[req_id] = stream
        client.refresh_symbols()
        self._send_depth(client, stream)

    def _cancel_mkt_data(self, client: TwsSession, f: list[str]) -> None:
        self._cancel(client, int(f[2]))

    def _cancel_depth(self, client: TwsSession, f: list[str]) -> None:
        self._cancel(client, int(f[2]))

    def _cancel_tbt(self, client: TwsSession, f: list[str]) -> None:
        self._cancel(client, int(f[1]))

    def _cancel(self, client: TwsSession, req_id: int) -> None:
        client.streams.pop(req_id, None)
        client.refresh_symbols()

    def _historical_ticks(self, client: TwsSession, f: list[str]) -> None:
        req_id = int(f[1])
        symbol = self._data_contract(client, req_id, ContractFields.parse(f, 2))
        if symbol is None:
            return
        if HISTORICAL_FARM in self.broken_farms:
            client.error(req_id, 162, "Historical Market Data Service error message:HMDS farm down")
            return
        now = time.monotonic()
        times = client.historical_times
        while times and now - times[0] > HISTORICAL_PACING[1]:
            times.popleft()
        if len(times) >= HISTORICAL_PACING[0]:
            client.error(
                req_id, 162, "Historical Market Data Service error message:pacing violation"
            )
            return
        times.append(now)
        start, count, what = f[15], int(f[17] or 1000), f[18]
        if what != "TRADES":
            client.error(req_id, 321, f"Error validating request: whatToShow {what} not served")
            return
        start_s = _parse_ib_time(start)
        ticks = [
            HistoricalTick(ts // 1_000_000_000, format_fixed(p), format_fixed(s), "ISLAND", "")
            for ts, p, s in self.trade_log.get(symbol, [])
            if ts // 1_000_000_000 >= start_s
        ][: min(count, 1000)]
        client.send(codec.encode_historical_ticks_last(req_id, ticks, True))

    _handlers: Final[dict[int, Callable[[TwsSimulator, TwsSession, list[str]], None]]] = {
        Out.REQ_POSITIONS: _positions,
        Out.REQ_OPEN_ORDERS: _open_orders,
        Out.REQ_ALL_OPEN_ORDERS: _open_orders,
        Out.REQ_COMPLETED_ORDERS: _completed_orders,
        Out.REQ_ACCOUNT_UPDATES: _account_updates,
        Out.REQ_ACCOUNT_UPDATES_MULTI: _account_updates_multi,
        Out.REQ_EXECUTIONS: _executions,
        Out.REQ_IDS: _ids,
        Out.REQ_MANAGED_ACCTS: _managed,
        Out.REQ_CURRENT_TIME: _current_time,
        Out.REQ_MARKET_DATA_TYPE: _market_data_type,
        Out.REQ_CONTRACT_DETAILS: _contract_details,
        Out.REQ_MKT_DATA: _mkt_data,
        Out.CANCEL_MKT_DATA: _cancel_mkt_data,
        Out.REQ_TICK_BY_TICK: _tick_by_tick,
        Out.CANCEL_TICK_BY_TICK: _cancel_tbt,
        Out.REQ_MKT_DEPTH: _mkt_depth,
        Out.CANCEL_MKT_DEPTH: _cancel_depth,
        Out.REQ_HISTORICAL_TICKS: _historical_ticks,
    }

    # -- streaming --------------------------------------------------------------------------
    def _flowing(self) -> bool:
        return self.connected_to_ib and MARKET_FARM not in self.broken_farms

    def on_market(self, update: MarketUpdate, ts: int) -> None:
        trade = update.trade
        if trade is not None:
            self.trade_log[update.symbol].append((ts, trade.price, trade.size))
        if not self._flowing():
            return  # TWS lost IB (or the farm): these events never reach a client
        for client in self.connected():
            for stream in list(client.streams.values()):
                if stream.symbol != update.symbol:
                    continue
                if (
                    trade is not None
                    and stream.kind in ("top", "AllLast")
                    and stream.skip_next_trade
                ):
                    stream.skip_next_trade = False
                elif trade is not None and stream.kind == "AllLast":
                    client.send(
                        codec.encode_tbt_last(
                            stream.req_id, ts // 1_000_000_000, format_fixed(trade.price),
                            format_fixed(trade.size), "ISLAND",
                        )
                    )  # fmt: skip
                elif trade is not None and stream.kind == "top":
                    last = TickType.DELAYED_LAST if stream.delayed else TickType.LAST
                    last_size = TickType.DELAYED_LAST_SIZE if stream.delayed else TickType.LAST_SIZE
                    size = format_fixed(trade.size)
                    client.send(
                        codec.encode_tick_price(
                            stream.req_id, last, format_fixed(trade.price), size
                        )
                    )
                    client.send(codec.encode_tick_size(stream.req_id, last_size, size))
                if update.top_changed and stream.kind == "top":
                    self._send_top(client, stream, update.top)
                elif update.top_changed and stream.kind == "BidAsk":
                    bid, bsz, ask, asz = update.top
                    client.send(
                        codec.encode_tbt_bid_ask(
                            stream.req_id, ts // 1_000_000_000, format_fixed(bid),
                            format_fixed(ask), format_fixed(bsz), format_fixed(asz),
                        )
                    )  # fmt: skip
                    stream.top = update.top
                elif update.changes and stream.kind == "depth":
                    self._send_depth(client, stream)

    def _send_top(self, client: TwsSession, stream: Stream, top: tuple[int, int, int, int]) -> None:
        """The changed halves of the quote: a price (with its size) or a size alone."""
        bid, bsz, ask, asz = top
        old_bid, old_bsz, old_ask, old_asz = stream.top
        d = stream.delayed
        if bid != old_bid:
            t = TickType.DELAYED_BID if d else TickType.BID
            client.send(
                codec.encode_tick_price(stream.req_id, t, format_fixed(bid), format_fixed(bsz))
            )
        elif bsz != old_bsz:
            t = TickType.DELAYED_BID_SIZE if d else TickType.BID_SIZE
            client.send(codec.encode_tick_size(stream.req_id, t, format_fixed(bsz)))
        if ask != old_ask:
            t = TickType.DELAYED_ASK if d else TickType.ASK
            client.send(
                codec.encode_tick_price(stream.req_id, t, format_fixed(ask), format_fixed(asz))
            )
        elif asz != old_asz:
            t = TickType.DELAYED_ASK_SIZE if d else TickType.ASK_SIZE
            client.send(codec.encode_tick_size(stream.req_id, t, format_fixed(asz)))
        stream.top = top

    def _send_depth(self, client: TwsSession, stream: Stream) -> None:
        """Row by row: an update where a row changed, an insert or delete at the end."""
        assert self.market is not None
        bids, asks = self.market.book(stream.symbol).levels(stream.rows)
        for side, old, new in ((DEPTH_BID, stream.bids, bids), (DEPTH_ASK, stream.asks, asks)):
            for pos in range(max(len(old), len(new)) - 1, -1, -1):
                if pos >= len(new):  # rows past the new end go, from the bottom
                    client.send(
                        codec.encode_depth(stream.req_id, pos, DEPTH_DELETE, side, "0", "0")
                    )
            for pos, (price, size) in enumerate(new):
                if pos >= len(old):
                    op = DEPTH_INSERT
                elif old[pos] != (price, size):
                    op = DEPTH_UPDATE
                else:
                    continue
                client.send(
                    codec.encode_depth(
                        stream.req_id, pos, op, side, format_fixed(price), format_fixed(size)
                    )
                )
        stream.bids, stream.asks = list(bids), list(asks)

    # -- the kit's faults -------------------------------------------------------------------
    async def send_malformed(self) -> None:
        """A market-data message of each session's first stream with a price that is not a
        number."""
        for client in self.connected():
            for stream in list(client.streams.values())[:1]:
                if stream.kind == "AllLast":
                    client.send(
                        codec.encode_tbt_last(stream.req_id, int(time.time()), "1.2.3", "1")
                    )
                elif stream.kind == "depth":
                    client.send(
                        codec.encode_depth(stream.req_id, 0, DEPTH_UPDATE, DEPTH_BID, "1.2.3", "1")
                    )
                elif stream.kind == "BidAsk":
                    client.send(codec.encode_tbt_bid_ask(stream.req_id, 0, "1.2.3", "1", "1", "1"))
                else:
                    client.send(codec.encode_tick_price(stream.req_id, TickType.LAST, "1.2.3", "1"))

    async def skip_sequence(self) -> None:
        """The TWS API numbers nothing: the next trade of every stream is lost silently."""
        for stream in self.streams():
            stream.skip_next_trade = True

    async def send_oversized(self) -> None:
        """A tick-by-tick trade at a price never traded, padded past the client's frame
        bound."""
        for client in self.connected():
            for stream in list(client.streams.values())[:1]:
                client.send(
                    codec.encode_tbt_last(
                        stream.req_id, int(time.time()), "999999", "1", "X" * OVERSIZED_PAD
                    )
                )

    async def refuse_credentials(self, on: bool = True) -> None:
        """The TWS API has no credentials: a new session's ``startApi`` is refused with
        326 (client id in use) while on, which the client must not retry."""
        self.credentials_refused = on

    # -- IB's own faults --------------------------------------------------------------------
    def _broadcast(self, code: int, text: str, req_id: int = -1) -> None:
        for client in self.connected():
            if client.established:
                client.error(req_id, code, text)

    async def lose_connectivity(self) -> None:
        """1100: TWS lost its connection to IB; market data stops, sockets stay up."""
        self.connected_to_ib = False
        self._broadcast(1100, MSG_CONNECTIVITY_LOST)

    async def restore_connectivity(self, data_lost: bool, lose: Sequence[str] = ()) -> None:
        """1101 (every market-data subscription is gone: resubscribe) or 1102 (kept;
        the streams of the symbols in ``lose`` did not survive anyway, silently, as
        happens with a farm that came back without them)."""
        self.connected_to_ib = True
        for client in self.connected():
            for req_id, stream in list(client.streams.items()):
                if data_lost or stream.symbol in lose:
                    del client.streams[req_id]
            client.refresh_symbols()
        self._broadcast(
            1101 if data_lost else 1102, MSG_RESTORED_LOST if data_lost else MSG_RESTORED_KEPT
        )

    def _farm_text(self, farm: str, ok: bool) -> str:
        kind = {"market": "Market data", "historical": "HMDS data", "secdef": "Sec-def data"}[
            farm_kind(farm)
        ]
        return f"{kind} farm connection is {'OK' if ok else 'broken'}:{farm}"

    async def farm_down(self, farm: str = MARKET_FARM) -> None:
        """2103 / 2105 / 2157: a farm is broken (a market farm's streams stop)."""
        self.broken_farms.add(farm)
        self._broadcast(FARM_CODES[farm_kind(farm)][0], self._farm_text(farm, ok=False))

    async def farm_up(self, farm: str = MARKET_FARM, lose: Sequence[str] = ()) -> None:
        """2104 / 2106 / 2158: the farm is OK again (its streams resume, but those of the
        symbols in ``lose``, which the farm came back without, silently)."""
        self.broken_farms.discard(farm)
        for client in self.connected():
            for req_id, stream in list(client.streams.items()):
                if stream.symbol in lose:
                    del client.streams[req_id]
            client.refresh_symbols()
        self._broadcast(FARM_CODES[farm_kind(farm)][1], self._farm_text(farm, ok=True))

    async def depth_reset(self) -> None:
        """317 on every depth stream, then its rows again from scratch."""
        for client in self.connected():
            for stream in client.streams.values():
                if stream.kind == "depth":
                    client.error(
                        stream.req_id,
                        317,
                        "Market depth data has been RESET. Please empty deep book contents "
                        "before applying any new entries.",
                    )
                    stream.bids, stream.asks = [], []
                    self._send_depth(client, stream)

    async def competing_session(self) -> None:
        """10197 on every stream: a live session elsewhere takes the market data."""
        for client in self.connected():
            for stream in client.streams.values():
                client.error(stream.req_id, 10197, "No market data during competing live session")

    async def pacing_violation(self) -> None:
        """Error 100 to every session (as when a client sends more than 50 messages a s)."""
        self._broadcast(100, "Max rate of messages per second has been exceeded:max=50 rec=51")

    async def deny(self, symbol: str, code: int = 354) -> None:
        """Data requests of ``symbol`` get ``code`` (354, 10089, 10090, 10091, 10186)."""
        self.denied[symbol] = code

    async def allow(self, symbol: str) -> None:
        self.denied.pop(symbol, None)

    async def send_burst(self, n: int, batch: int = 2000, rate: float = 0.0) -> None:
        """For benchmarks: ``n`` tick-by-tick trades on every AllLast stream, as fast as
        the socket takes them, or at ``rate`` a second (in batches every 10 ms). Prices
        cycle on the grid; the market model does not record them."""
        if rate > 0:
            batch = max(1, round(rate / 100))
        now = int(time.time())
        t0 = time.monotonic()
        for start in range(0, n, batch):
            for client in self.connected():
                for stream in [s for s in client.streams.values() if s.kind == "AllLast"]:
                    client.send(
                        b"".join(
                            codec.encode_tbt_last(
                                stream.req_id, now, f"{100 + i % 50 / 100:.2f}",
                                str(1 + i % 9), "ISLAND",
                            )
                            for i in range(start, min(n, start + batch))
                        )
                    )  # fmt: skip
                    await client.drained()
            if rate > 0:  # the next batch on the schedule, not 10 ms after this one
                due = t0 + (start + batch) / rate
                await anyio.sleep(max(0.0, due - time.monotonic()))

    async def send_error(self, req_id: int, code: int, text: str) -> None:
        """Any error message, to every session."""
        self._broadcast(code, text, req_id)


_DENIED_TEXT: Final = {
    354: "Requested market data is not subscribed.",
    10089: "Requested market data requires additional subscription for API.",
    10090: "Part of requested market data is not subscribed.",
    10091: "Part of requested market data requires additional subscription for API.",
    10186: "Requested market data is not subscribed. Delayed market data is not enabled.",
}


def _closing(client: TwsSession) -> bool:
    return client.closing


def _parse_ib_time(text: str) -> int:
    """``yyyymmdd hh:mm:ss[ TZ]`` or ``yyyymmdd-hh:mm:ss`` (UTC) as epoch seconds."""
    text = text.strip().replace("-", " ")
    parts = text.split(" ")
    stamp = datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S").replace(tzinfo=UTC)
    return int(stamp.timestamp())


def _parse_ids(text: str) -> list[int]:
    return [int(x) for x in parse_list(text)]


# -- `hub sim ibkr` and `hub demo` ---------------------------------------------------------------
_OPTIONS: dict[str, tuple[OptionParser, str] | None] = {
    "seed": (int, "a whole number"),
    "accounts": (parse_list, "ACCOUNT[,ACCOUNT...]"),
    "live_entitled": (parse_bool, "true or false"),
    "max_lines": (int, "a whole number"),
    "max_tick_by_tick": (int, "a whole number"),
    "max_depth": (int, "a whole number"),
    "client_ids_in_use": (_parse_ids, "ID[,ID...]"),
}


async def serve_simulator(
    host: str,
    port: int,
    symbols: list[str],
    rate: float,
    ready: Callable[[str, int], None],
    **options: object,
) -> None:
    """Serve until cancelled; ``options`` are ``hub sim -o KEY=VALUE`` (text)."""
    kwargs: dict[str, Any] = simulator_options("ibkr", options, _OPTIONS)
    sim = TwsSimulator(symbols or DEFAULT_SYMBOLS, rate, host=host, port=port, **kwargs)
    await sim.serve(ready)


def demo_config(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    """The connection ``hub demo`` makes to this simulator."""
    return ExchangeConfig.interactive_brokers(endpoint, 1, symbols=list(symbols))


__all__ = [
    "DEFAULT_SYMBOLS",
    "FARM_CODES",
    "SimContract",
    "Stream",
    "TwsSession",
    "TwsSimulator",
    "demo_config",
    "serve_simulator",
]
