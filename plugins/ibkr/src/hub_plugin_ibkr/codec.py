"""The TWS API socket protocol, sans-I/O: bytes in, messages out; messages in, bytes out.

The wire (sdk-docs/protocols/tws-simulator.md): the client opens with ``API\\0`` and one
framed text ``v<min>..<max>[ <options>]``; every frame after that is a 4-byte
big-endian length and a body of NUL-terminated text fields, the first the message id.
The server's first frame is ``<server version>\\0<connection time>\\0``.

``ClientCodec`` is the client's side (what the plugin's reader runs in front of
ib_async's decoder), ``ServerCodec`` the server's (the simulator's); both frame with the
kit's bounded ``LengthPrefixFramer``. The ``encode_*`` functions build the server's
messages in the field layouts ib_async 2.1 decodes at server versions 157-178; the
``parse_*`` functions read the messages the plugin handles itself from their fields,
keeping numbers as the venue's text (the sink parses them exactly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from hub_core.plugin import NEED_DATA, DecodeError, FrameTooLarge, LengthPrefixFramer, NeedData

PREFIX: Final = b"API\0"
"""What a TWS API client sends first, before its version range."""
MIN_SERVER_VERSION: Final = 157
MAX_SERVER_VERSION: Final = 178
"""The server versions the simulator speaks (ib_async 2.1 asks for 157..178)."""
MAX_FRAME: Final = 1024 * 1024
"""Longest frame body accepted by default (TWS's own limit is far larger; market data
messages are under 200 bytes)."""


# -- message ids ---------------------------------------------------------------------------
class In:
    """Ids of the messages the server sends (``fields[0]``)."""

    TICK_PRICE: Final = 1
    TICK_SIZE: Final = 2
    ERROR: Final = 4
    OPEN_ORDER: Final = 5
    NEXT_VALID_ID: Final = 9
    CONTRACT_DETAILS: Final = 10
    UPDATE_MKT_DEPTH: Final = 12
    MANAGED_ACCOUNTS: Final = 15
    TICK_GENERIC: Final = 45
    TICK_STRING: Final = 46
    CURRENT_TIME: Final = 49
    CONTRACT_DETAILS_END: Final = 52
    OPEN_ORDER_END: Final = 53
    ACCOUNT_DOWNLOAD_END: Final = 54
    EXEC_DETAILS_END: Final = 55
    TICK_SNAPSHOT_END: Final = 57
    MARKET_DATA_TYPE: Final = 58
    POSITION_END: Final = 62
    ACCOUNT_UPDATE_MULTI_END: Final = 74
    TICK_REQ_PARAMS: Final = 81
    HISTORICAL_TICKS_LAST: Final = 98
    TICK_BY_TICK: Final = 99
    COMPLETED_ORDERS_END: Final = 102


class Out:
    """Ids of the requests the client sends (``fields[0]``)."""

    REQ_MKT_DATA: Final = 1
    CANCEL_MKT_DATA: Final = 2
    REQ_OPEN_ORDERS: Final = 5
    REQ_ACCOUNT_UPDATES: Final = 6
    REQ_EXECUTIONS: Final = 7
    REQ_IDS: Final = 8
    REQ_CONTRACT_DETAILS: Final = 9
    REQ_MKT_DEPTH: Final = 10
    CANCEL_MKT_DEPTH: Final = 11
    REQ_AUTO_OPEN_ORDERS: Final = 15
    REQ_ALL_OPEN_ORDERS: Final = 16
    REQ_MANAGED_ACCTS: Final = 17
    REQ_CURRENT_TIME: Final = 49
    REQ_MARKET_DATA_TYPE: Final = 59
    REQ_POSITIONS: Final = 61
    CANCEL_POSITIONS: Final = 64
    START_API: Final = 71
    REQ_ACCOUNT_UPDATES_MULTI: Final = 76
    REQ_HISTORICAL_TICKS: Final = 96
    REQ_TICK_BY_TICK: Final = 97
    CANCEL_TICK_BY_TICK: Final = 98
    REQ_COMPLETED_ORDERS: Final = 99


class TickType:
    """``tickPrice`` / ``tickSize`` field numbers (live, and their delayed twins)."""

    BID_SIZE: Final = 0
    BID: Final = 1
    ASK: Final = 2
    ASK_SIZE: Final = 3
    LAST: Final = 4
    LAST_SIZE: Final = 5
    VOLUME: Final = 8
    DELAYED_BID: Final = 66
    DELAYED_ASK: Final = 67
    DELAYED_LAST: Final = 68
    DELAYED_BID_SIZE: Final = 69
    DELAYED_ASK_SIZE: Final = 70
    DELAYED_LAST_SIZE: Final = 71


DELAYED_TICKS: Final = {
    TickType.DELAYED_BID: TickType.BID,
    TickType.DELAYED_ASK: TickType.ASK,
    TickType.DELAYED_LAST: TickType.LAST,
    TickType.DELAYED_BID_SIZE: TickType.BID_SIZE,
    TickType.DELAYED_ASK_SIZE: TickType.ASK_SIZE,
    TickType.DELAYED_LAST_SIZE: TickType.LAST_SIZE,
}
"""Delayed tick type -> the live one it stands for."""

TBT_LAST: Final = 1
TBT_ALL_LAST: Final = 2
TBT_BID_ASK: Final = 3
TBT_MID_POINT: Final = 4
TBT_TYPES: Final = {"Last": TBT_LAST, "AllLast": TBT_ALL_LAST, "BidAsk": TBT_BID_ASK}
"""``reqTickByTickData``'s tick type names -> the number ``tickByTick`` carries."""

DEPTH_INSERT: Final = 0
DEPTH_UPDATE: Final = 1
DEPTH_DELETE: Final = 2
DEPTH_ASK: Final = 0
DEPTH_BID: Final = 1


# -- fields and frames ---------------------------------------------------------------------
Field = str | int | float | bool


def _text(value: Field) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def encode_fields(*fields: Field) -> bytes:
    """One frame: the 4-byte big-endian length, then each field NUL-terminated."""
    body = "".join(_text(f) + "\0" for f in fields).encode()
    return len(body).to_bytes(4, "big") + body


def decode_fields(frame: bytes) -> list[str]:
    """A frame body as its text fields (the terminating NUL of each dropped);
    ``DecodeError`` for a body that is not NUL-terminated fields."""
    if not frame or frame[-1] != 0:
        raise DecodeError(f"a frame of {len(frame)} bytes that does not end with NUL")
    return frame[:-1].decode("utf-8", "backslashreplace").split("\0")


def encode_client_hello(
    min_version: int = MIN_SERVER_VERSION, max_version: int = MAX_SERVER_VERSION, options: str = ""
) -> bytes:
    """The client's opening: ``API\\0`` and its framed version range."""
    text = f"v{min_version}..{max_version}" + (f" {options}" if options else "")
    body = text.encode()
    return PREFIX + len(body).to_bytes(4, "big") + body


def encode_server_hello(version: int, connection_time: str) -> bytes:
    """The server's first frame: its version and connection time."""
    return encode_fields(version, connection_time)


def negotiate(client_min: int, client_max: int) -> int | None:
    """The version the server answers a client range with (the highest both speak), or
    None when the ranges do not meet."""
    version = min(client_max, MAX_SERVER_VERSION)
    return version if version >= max(client_min, MIN_SERVER_VERSION) else None


# -- events --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientHello:
    """``API\\0`` + ``v<min>..<max>``: a client's version range (and connect options)."""

    min_version: int
    max_version: int
    options: str = ""


@dataclass(frozen=True, slots=True)
class ServerHello:
    """The server's first frame: the negotiated version and its connection time."""

    version: int
    connection_time: str


@dataclass(frozen=True, slots=True)
class Message:
    """Any other frame: its id and every field (``fields[0]`` is the id as text)."""

    msg_id: int
    fields: list[str]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that could not be used (counted; the stream goes on)."""

    reason: str


class ServerCodec:
    """The server's side: the client's hello, then its requests as ``Message``s."""

    def __init__(self, max_frame: int = 64 * 1024) -> None:
        self._framer = LengthPrefixFramer(4, "big", max_frame)
        self._prefix = b""
        self._greeted = False
        self._hello_done = False

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the client."""
        if not self._greeted:
            self._prefix += data
            if len(self._prefix) < len(PREFIX):
                return
            self._greeted = True
            data, self._prefix = self._prefix[len(PREFIX) :], self._prefix[: len(PREFIX)]
        self._framer.feed(data)

    @property
    def prefix_ok(self) -> bool | None:
        """Whether the client opened with ``API\\0`` (None: not enough bytes yet)."""
        if len(self._prefix) < len(PREFIX):
            return None
        return self._prefix == PREFIX

    def next_event(self) -> ClientHello | Message | Malformed | NeedData:
        """The next event, or ``NEED_DATA``."""
        if not self._greeted:
            return NEED_DATA
        if self._prefix != PREFIX:
            return Malformed(f"the client did not open with API\\0: {self._prefix!r}")
        try:
            frame = self._framer.next_frame()
        except (FrameTooLarge, DecodeError) as exc:
            return Malformed(str(exc))
        if isinstance(frame, NeedData):
            return NEED_DATA
        if not self._hello_done:
            self._hello_done = True
            return parse_hello(frame)
        try:
            fields = decode_fields(frame)
            return Message(int(fields[0]), fields)
        except (DecodeError, ValueError) as exc:
            return Malformed(f"an unusable request: {exc}")


def parse_hello(body: bytes) -> ClientHello | Malformed:
    """``v<min>..<max>[ <options>]``."""
    text = body.decode("ascii", "replace")
    versions, _, options = text.partition(" ")
    low, sep, high = versions.removeprefix("v").partition("..")
    if not versions.startswith("v") or not sep or not low.isdigit() or not high.isdigit():
        return Malformed(f"not a version range: {text[:40]!r}")
    return ClientHello(int(low), int(high), options)


class ClientCodec:
    """The client's side: the server's hello, then each frame as a list of fields.

    ``next_fields()`` is the hot path (one frame, one decode, one split); a frame past
    ``max_frame`` is refused as it arrives (``FrameTooLarge``, its bytes dropped), so a
    hostile or broken server cannot make the reader hold more than one bounded frame.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._framer = LengthPrefixFramer(4, "big", max_frame)
        self.server_version = 0

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server (any split)."""
        self._framer.feed(data)

    def next_fields(self) -> list[str] | NeedData:
        """The next frame's fields, or ``NEED_DATA``; raises ``DecodeError`` (and its
        ``FrameTooLarge``) for a frame it drops."""
        frame = self._framer.next_frame()
        if isinstance(frame, NeedData):
            return NEED_DATA
        return decode_fields(frame)

    def next_event(self) -> ServerHello | Message | Malformed | NeedData:
        """The next event (``ServerHello`` first), or ``NEED_DATA``."""
        try:
            fields = self.next_fields()
        except DecodeError as exc:
            return Malformed(str(exc))
        if isinstance(fields, NeedData):
            return NEED_DATA
        try:
            if not self.server_version:
                if len(fields) != 2:
                    return Malformed(f"expected the server's version and time, got {fields!r}")
                self.server_version = int(fields[0])
                return ServerHello(self.server_version, fields[1])
            return Message(int(fields[0]), fields)
        except ValueError as exc:
            return Malformed(f"an unusable message: {exc}")


# -- the messages the plugin reads itself ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class TickPrice:
    req_id: int
    tick_type: int
    price: str
    size: str


@dataclass(frozen=True, slots=True)
class TickSize:
    req_id: int
    tick_type: int
    size: str


@dataclass(frozen=True, slots=True)
class TickByTickLast:
    """``tickByTick`` Last / AllLast: one trade (``time`` in seconds)."""

    req_id: int
    time: int
    price: str
    size: str
    exchange: str
    conditions: str


@dataclass(frozen=True, slots=True)
class TickByTickBidAsk:
    req_id: int
    time: int
    bid_price: str
    ask_price: str
    bid_size: str
    ask_size: str


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """``updateMktDepth``: one row, by position, of one side."""

    req_id: int
    position: int
    operation: int
    side: int
    price: str
    size: str


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """``error``: ``req_id`` -1 for a message about the connection, not a request."""

    req_id: int
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class MarketDataType:
    req_id: int
    data_type: int


@dataclass(frozen=True, slots=True)
class HistoricalTick:
    time: int
    price: str
    size: str
    exchange: str
    conditions: str


@dataclass(frozen=True, slots=True)
class HistoricalTicksLast:
    req_id: int
    ticks: list[HistoricalTick] = field(default_factory=list)
    done: bool = True


def _fields(fields: list[str], n: int, what: str) -> None:
    if len(fields) < n:
        raise DecodeError(f"{what}: {len(fields)} fields, expected at least {n}")


def parse_tick_price(f: list[str]) -> TickPrice:
    """``1, version, reqId, tickType, price, size, attrMask``."""
    _fields(f, 6, "tickPrice")
    return TickPrice(int(f[2]), int(f[3]), f[4], f[5])


def parse_tick_size(f: list[str]) -> TickSize:
    """``2, version, reqId, tickType, size``."""
    _fields(f, 5, "tickSize")
    return TickSize(int(f[2]), int(f[3]), f[4])


def parse_tick_by_tick(f: list[str]) -> TickByTickLast | TickByTickBidAsk | None:
    """``99, reqId, tickType, time, ...`` (None for MidPoint, which the hub does not use)."""
    _fields(f, 5, "tickByTick")
    req_id, kind, time = int(f[1]), int(f[2]), int(f[3])
    if kind in (TBT_LAST, TBT_ALL_LAST):
        _fields(f, 9, "tickByTick AllLast")
        return TickByTickLast(req_id, time, f[4], f[5], f[7], f[8])
    if kind == TBT_BID_ASK:
        _fields(f, 9, "tickByTick BidAsk")
        return TickByTickBidAsk(req_id, time, f[4], f[5], f[6], f[7])
    if kind == TBT_MID_POINT:
        return None
    raise DecodeError(f"tickByTick of unknown type {kind}")


def parse_depth(f: list[str]) -> DepthUpdate:
    """``12, version, reqId, position, operation, side, price, size``."""
    _fields(f, 8, "updateMktDepth")
    return DepthUpdate(int(f[2]), int(f[3]), int(f[4]), int(f[5]), f[6], f[7])


def parse_error(f: list[str]) -> ErrorMessage:
    """``4, version, reqId, code, text[, advancedOrderRejectJson]``."""
    _fields(f, 5, "error")
    return ErrorMessage(int(f[2]), int(f[3]), f[4])


def parse_market_data_type(f: list[str]) -> MarketDataType:
    """``58, version, reqId, marketDataType``."""
    _fields(f, 4, "marketDataType")
    return MarketDataType(int(f[2]), int(f[3]))


def parse_historical_ticks_last(f: list[str]) -> HistoricalTicksLast:
    """``98, reqId, n, n x (time, mask, price, size, exchange, conditions), done``."""
    _fields(f, 3, "historicalTicksLast")
    n = int(f[2])
    _fields(f, 4 + 6 * n, "historicalTicksLast")
    ticks = [
        HistoricalTick(int(f[i]), f[i + 2], f[i + 3], f[i + 4], f[i + 5])
        for i in range(3, 3 + 6 * n, 6)
    ]
    return HistoricalTicksLast(int(f[1]), ticks, f[3 + 6 * n] == "1")


# -- the requests the simulator reads --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ContractFields:
    """A contract as a request carries it (12 fields, from ``conId``)."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str
    strike: str
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    @classmethod
    def parse(cls, f: list[str], at: int) -> ContractFields:
        """The 12 contract fields starting at ``f[at]``."""
        _fields(f, at + 12, "a contract")
        c = f[at : at + 12]
        return cls(int(c[0] or 0), *c[1:])


def request_req_id(f: list[str]) -> int:
    """The request id of a request that has one, wherever its layout puts it."""
    msg_id = int(f[0])
    if msg_id in (Out.REQ_HISTORICAL_TICKS, Out.REQ_TICK_BY_TICK, Out.CANCEL_TICK_BY_TICK):
        return int(f[1])  # these carry no version field
    return int(f[2])


# -- the server's messages (what the simulator sends) ----------------------------------------
def encode_next_valid_id(order_id: int) -> bytes:
    return encode_fields(In.NEXT_VALID_ID, 1, order_id)


def encode_managed_accounts(accounts: list[str]) -> bytes:
    return encode_fields(In.MANAGED_ACCOUNTS, 1, ",".join(accounts))


def encode_error(req_id: int, code: int, text: str) -> bytes:
    """``error`` as servers >= 166 send it (with an empty advanced-reject field)."""
    return encode_fields(In.ERROR, 2, req_id, code, text, "")


def encode_current_time(epoch_s: int) -> bytes:
    return encode_fields(In.CURRENT_TIME, 1, epoch_s)


def encode_contract_details(
    req_id: int,
    c: ContractFields,
    con_id: int,
    min_tick: str,
    long_name: str,
    time_zone: str = "US/Eastern",
) -> bytes:
    """``contractDetails`` in the layout of server versions >= 164 (no version field)."""
    return encode_fields(
        In.CONTRACT_DETAILS, req_id, c.symbol, c.sec_type, c.last_trade_date,
        c.strike or "0", c.right, c.exchange, c.currency, c.local_symbol, c.local_symbol,
        c.trading_class, con_id, min_tick,
        c.multiplier, "LMT,MKT", c.exchange, 1, 0, long_name, c.primary_exchange, "",
        "", "", "", time_zone, "", "", "", "",
        0,  # no security ids
        "", "", "", "", "", "", "1", "1", "1",
    )  # fmt: skip


def encode_contract_details_end(req_id: int) -> bytes:
    return encode_fields(In.CONTRACT_DETAILS_END, 1, req_id)


def encode_tick_price(req_id: int, tick_type: int, price: str, size: str, mask: int = 0) -> bytes:
    return encode_fields(In.TICK_PRICE, 6, req_id, tick_type, price, size, mask)


def encode_tick_size(req_id: int, tick_type: int, size: str) -> bytes:
    return encode_fields(In.TICK_SIZE, 6, req_id, tick_type, size)


def encode_tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return encode_fields(In.TICK_STRING, 6, req_id, tick_type, value)


def encode_tbt_last(
    req_id: int, time: int, price: str, size: str, exchange: str = "", conditions: str = ""
) -> bytes:
    """``tickByTick`` AllLast (mask 0)."""
    return encode_fields(
        In.TICK_BY_TICK, req_id, TBT_ALL_LAST, time, price, size, 0, exchange, conditions
    )


def encode_tbt_bid_ask(
    req_id: int, time: int, bid: str, ask: str, bid_size: str, ask_size: str
) -> bytes:
    return encode_fields(
        In.TICK_BY_TICK, req_id, TBT_BID_ASK, time, bid, ask, bid_size, ask_size, 0
    )


def encode_depth(
    req_id: int, position: int, operation: int, side: int, price: str, size: str
) -> bytes:
    return encode_fields(In.UPDATE_MKT_DEPTH, 1, req_id, position, operation, side, price, size)


def encode_market_data_type(req_id: int, data_type: int) -> bytes:
    return encode_fields(In.MARKET_DATA_TYPE, 1, req_id, data_type)


def encode_historical_ticks_last(
    req_id: int, ticks: list[HistoricalTick], done: bool = True
) -> bytes:
    fields: list[Field] = [In.HISTORICAL_TICKS_LAST, req_id, len(ticks)]
    for t in ticks:
        fields += [t.time, 0, t.price, t.size, t.exchange, t.conditions]
    fields.append(done)
    return encode_fields(*fields)


def encode_position_end() -> bytes:
    return encode_fields(In.POSITION_END, 1)


def encode_open_order_end() -> bytes:
    return encode_fields(In.OPEN_ORDER_END, 1)


def encode_account_download_end(account: str) -> bytes:
    return encode_fields(In.ACCOUNT_DOWNLOAD_END, 1, account)


def encode_exec_details_end(req_id: int) -> bytes:
    return encode_fields(In.EXEC_DETAILS_END, 1, req_id)


def encode_completed_orders_end() -> bytes:
    return encode_fields(In.COMPLETED_ORDERS_END)


def encode_account_update_multi_end(req_id: int) -> bytes:
    return encode_fields(In.ACCOUNT_UPDATE_MULTI_END, 1, req_id)


__all__ = [
    "MAX_FRAME",
    "MAX_SERVER_VERSION",
    "MIN_SERVER_VERSION",
    "NEED_DATA",
    "PREFIX",
    "ClientCodec",
    "ClientHello",
    "ContractFields",
    "DepthUpdate",
    "ErrorMessage",
    "HistoricalTick",
    "HistoricalTicksLast",
    "In",
    "Malformed",
    "MarketDataType",
    "Message",
    "Out",
    "ServerCodec",
    "ServerHello",
    "TickByTickBidAsk",
    "TickByTickLast",
    "TickPrice",
    "TickSize",
    "TickType",
    "decode_fields",
    "encode_client_hello",
    "encode_fields",
    "negotiate",
]
