"""Binance's wire: the msgspec structs of its frames and REST snapshots, the shared
decoders, and pure helpers (stream names, streams named in a URL, level parsing).

No state and no I/O: ``session`` decodes with these, ``BinanceDialect`` names its
channels with them. The names are the package's own (underscored): a vendor's
dialect has its own wire module.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qs, urlsplit

import msgspec

from hub_core.plugin import DecodeError, parse_fixed

__all__ = ["stream_name"]

_PARTIAL_RE: Final = re.compile(r"depth(5|10|20)(@100ms)?")
_PARTIAL_CHANNELS: Final = frozenset(
    f"depth{n}{speed}".encode() for n in (5, 10, 20) for speed in ("", "@100ms")
)
"""The partial-depth channels as bytes, as a combined frame's stream name ends."""


# -- wire types (field names are Binance's one-letter keys) ------------------------------
# Fields are declared in the order Binance writes them, including ones we do not use:
# msgspec then matches each key on its first guess instead of skipping unknown keys,
# measured about 20 % faster per frame.
class _Trade(msgspec.Struct, tag_field="e", tag="trade", gc=False):
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    M: bool = True


class _AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    E: int
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's key
    T: int
    m: bool
    M: bool = True


class _DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", gc=False):
    """Spot diff depth (no ``pu``; ``T`` and ``pu`` keep their defaults)."""

    E: int
    s: str
    U: int
    u: int
    b: msgspec.Raw
    """The bid levels as JSON (``[["price","size"],...]``): the sink parses them."""
    a: msgspec.Raw
    T: int = 0
    pu: int = -1
    """Futures only: the ``u`` of the previous event of this stream."""


class _FuturesDepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", gc=False, kw_only=True):
    """USD-M futures diff depth: the same fields as ``_DepthUpdate`` in the order
    ``fstream`` writes them (``e``, ``E``, ``T``, ``s``, ``U``, ``u``, ``pu``, ``b``, ``a``)."""

    E: int
    T: int = 0
    s: str
    U: int
    u: int
    pu: int = -1
    b: msgspec.Raw
    """The levels as JSON, parsed by the sink (see ``_DepthUpdate``)."""
    a: msgspec.Raw


class _FuturesBookTicker(msgspec.Struct, tag_field="e", tag="bookTicker", gc=False):
    # e, u, s, b, B, a, A, T, E: the order fstream writes them in
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    T: int
    E: int


class _KlineBody(msgspec.Struct, gc=False):
    t: int
    T: int
    s: str
    i: str
    o: str
    c: str
    h: str
    low: str = msgspec.field(name="l")
    v: str = "0"
    x: bool = False


class _Kline(msgspec.Struct, tag_field="e", tag="kline", gc=False):
    """Candles carry no tick type: parsed to check their shape, then counted as ignored."""

    E: int
    s: str
    k: _KlineBody


class _ServerShutdownEvent(msgspec.Struct, tag_field="e", tag="serverShutdown", gc=False):
    E: int = 0


_Event = _Trade | _AggTrade | _DepthUpdate | _FuturesBookTicker | _Kline | _ServerShutdownEvent
_FuturesEvent = (
    _Trade | _AggTrade | _FuturesDepthUpdate | _FuturesBookTicker | _Kline | _ServerShutdownEvent
)
_AnyEvent = _Event | _FuturesEvent
_AnyDepth = _DepthUpdate | _FuturesDepthUpdate


class _BookTicker(msgspec.Struct, gc=False):
    """Spot ``bookTicker``: the one stream without an ``e`` field (and without a time)."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class _Combined(msgspec.Struct, gc=False):
    stream: str
    data: msgspec.Raw


# A combined-stream frame decoded in one pass, its payload straight into the event
# union (decoding ``data`` as Raw and then again cost a third more per frame).
class _CombinedEvent(msgspec.Struct, gc=False):
    stream: str
    data: _Event


class _CombinedFuturesEvent(msgspec.Struct, gc=False):
    stream: str
    data: _FuturesEvent


class _CombinedBookTicker(msgspec.Struct, gc=False):
    stream: str
    data: _BookTicker


class _DepthSnapshot(msgspec.Struct, gc=False):
    """REST ``/api/v3/depth`` (and ``/fapi/v1/depth``) and the partial-depth stream."""

    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    E: int = 0
    T: int = 0


class _ErrorBody(msgspec.Struct, gc=False):
    code: int = 0
    msg: str = ""


class _EventType(msgspec.Struct, gc=False):
    e: str


_NO_RAW: Final = msgspec.Raw(b"")


class _Envelope(msgspec.Struct, gc=False):
    """Any other JSON object: replies, errors, wrapped events, keys in another order."""

    e: str | None = None
    stream: str | None = None
    # Raw cannot share a union with None: an absent key is an empty Raw
    data: msgspec.Raw = _NO_RAW
    event: msgspec.Raw = _NO_RAW
    id: int | str | None = None
    result: msgspec.Raw = _NO_RAW
    error: _ErrorBody | None = None
    code: int | None = None
    msg: str | None = None
    u: int | None = None
    lastUpdateId: int | None = None


_DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, DecodeError, ValueError)


def stream_name(symbol: str, channel: str) -> str:
    """Binance's stream name: lower-case symbol, ``@``, channel (``btcusdt@trade``)."""
    return f"{symbol.lower()}@{channel}"


def _levels(pairs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    return [(parse_fixed(p), parse_fixed(q)) for p, q in pairs]


def _raw_levels(raw: msgspec.Raw) -> list[tuple[int, int]]:
    """A depth event's side (kept as JSON) as fixed-point pairs, off the hot path."""
    return _levels(_DEC_LEVELS.decode(raw))


# shared by every session: msgspec decoders and encoders hold no per-call state, and
# an idle connection should not carry its own copies
_DEC_EVENT: Final = msgspec.json.Decoder(_Event)
_DEC_FUTURES_EVENT: Final = msgspec.json.Decoder(_FuturesEvent)
_DEC_COMBINED_EVENT: Final = msgspec.json.Decoder(_CombinedEvent)
_DEC_COMBINED_FUTURES_EVENT: Final = msgspec.json.Decoder(_CombinedFuturesEvent)
_DEC_COMBINED_BOOK_TICKER: Final = msgspec.json.Decoder(_CombinedBookTicker)
_DEC_BOOK_TICKER: Final = msgspec.json.Decoder(_BookTicker)
_DEC_COMBINED: Final = msgspec.json.Decoder(_Combined)
_DEC_SNAPSHOT: Final = msgspec.json.Decoder(_DepthSnapshot)
_DEC_LEVELS: Final = msgspec.json.Decoder(list[tuple[str, str]])
_DEC_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_DEC_EVENT_TYPE: Final = msgspec.json.Decoder(_EventType)
_ENC: Final = msgspec.json.Encoder()


_KNOWN_EVENTS: Final = frozenset(
    {"trade", "aggTrade", "depthUpdate", "bookTicker", "kline", "serverShutdown"}
)


def _streams_in_url(endpoint: str) -> list[str]:
    """Streams named in the URL itself: ``/ws/<stream>`` or ``/stream?streams=a/b``."""
    parts = urlsplit(endpoint)
    out: list[str] = []
    path = parts.path.rstrip("/")
    if path.startswith("/ws/"):
        out.extend(s for s in path[4:].split("/") if s)
    for value in parse_qs(parts.query).get("streams", []):
        out.extend(s for s in value.split("/") if s)
    return out
