"""Sans-I/O codec of Databento's live gateway protocol (sdk-docs/protocols/databento-gateway.md).

No sockets and no clock here. The wire has two halves:

1. Control lines, ``key=value|key=value\\n``: the gateway's greeting
   (``lsg_version=``) and CRAM challenge (``cram=``), the client's
   authentication request (``auth=<sha256(challenge|key)>-<bucket>|dataset=...``),
   the gateway's reply (``success=1|session_id=...`` or ``success=0|error=...``),
   the client's subscription requests (``schema=...|stype_in=...|symbols=...``)
   and ``start_session=0``.
2. After ``start_session``, from the gateway: a DBN v3 metadata header, then DBN
   records. Records are decoded by the core's compiled data plane, not here;
   ``MetadataReader`` only takes the header off the front of the stream.

The hub's side of the control half is the official ``databento`` client's; this
module gives the gateway's side (``GatewayCodec``, used by the simulator) and the
pieces both sides share: field parsing and formatting, the CRAM response, schema
names. Every decoding error is a ``CodecError`` (a ``hub_core.plugin.DecodeError``);
a control line longer than ``MAX_LINE_BYTES`` raises ``LineTooLong`` (also a
``FrameTooLarge``) before more than that is buffered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from hub_core.plugin import NEED_DATA, DecodeError, FrameTooLarge, NeedData

__all__ = [
    "BUCKET_ID_LENGTH",
    "DBN_VERSION",
    "ERR_AUTH_FAILED",
    "ERR_CONNECTION_LIMIT",
    "ERR_INTERNAL",
    "ERR_INVALID_SUBSCRIPTION",
    "ERR_REPLAY_AGED_OUT",
    "ERR_SKIPPED_RECORDS",
    "ERR_SYMBOL_RESOLUTION_FAILED",
    "LSG_VERSION",
    "MAX_LINE_BYTES",
    "MAX_SYMBOLS_PER_LINE",
    "NEED_DATA",
    "REPLAY_WINDOW_NS",
    "SCHEMAS",
    "STYPES",
    "SYS_END_OF_INTERVAL",
    "SYS_HEARTBEAT",
    "SYS_REPLAY_COMPLETED",
    "SYS_SLOW_READER_WARNING",
    "SYS_SUBSCRIPTION_ACK",
    "AuthRequest",
    "AuthResponse",
    "BadLine",
    "Challenge",
    "CodecError",
    "ConnectionClosed",
    "GatewayCodec",
    "Greeting",
    "LineTooLong",
    "MetadataReader",
    "NeedData",
    "SessionStart",
    "Subscription",
    "cram_response",
    "format_line",
    "parse_line",
    "verify_cram",
]

LSG_VERSION: Final = "0.7.2"
"""The gateway version our simulator announces (any text; clients only log it)."""
BUCKET_ID_LENGTH: Final = 5
"""The CRAM reply ends with the key's last five characters: the gateway's key bucket."""
DBN_VERSION: Final = 3
"""The DBN version of the record stream (the core's decoder reads v3 layouts)."""
MAX_LINE_BYTES: Final = 256 * 1024
"""Longest control line either side accepts (a subscription of 500 symbols of 70
characters is about 36 KiB)."""
MAX_SYMBOLS_PER_LINE: Final = 500
"""Symbols per subscription line: the official client splits longer lists so."""
REPLAY_WINDOW_NS: Final = 24 * 3600 * 1_000_000_000
"""How far back ``start=`` may reach: the gateway's intraday replay window."""

SCHEMAS: Final = (
    "trades",
    "tbbo",
    "mbp-1",
    "mbp-10",
    "mbo",
    "bbo-1s",
    "bbo-1m",
)
"""The schemas this plugin turns into ticks (sdk-docs/protocols/databento-gateway.md)."""
STYPES: Final = ("raw_symbol", "instrument_id", "parent", "continuous")
"""Input symbologies a subscription may name."""

# SystemMsg codes (DBN v3)
SYS_HEARTBEAT: Final = 0
SYS_SUBSCRIPTION_ACK: Final = 1
SYS_SLOW_READER_WARNING: Final = 2
SYS_REPLAY_COMPLETED: Final = 3
SYS_END_OF_INTERVAL: Final = 4
# ErrorMsg codes (DBN v3)
ERR_AUTH_FAILED: Final = 1
ERR_CONNECTION_LIMIT: Final = 3
ERR_SYMBOL_RESOLUTION_FAILED: Final = 4
ERR_INVALID_SUBSCRIPTION: Final = 5
ERR_INTERNAL: Final = 6
ERR_SKIPPED_RECORDS: Final = 7
ERR_REPLAY_AGED_OUT: Final = 8

_METADATA_PREFIX: Final = struct.Struct("<3sBI")


class CodecError(DecodeError):
    """Bytes that are not the gateway protocol."""


class LineTooLong(CodecError, FrameTooLarge):
    """A control line longer than ``MAX_LINE_BYTES``."""


# -- fields ----------------------------------------------------------------------------
def parse_line(line: bytes) -> dict[str, str]:
    """``b"a=1|b=x"`` (no newline) -> ``{"a": "1", "b": "x"}``; ``CodecError`` if a
    field has no ``=``, a key repeats, or the line is not UTF-8."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CodecError("a control line is not UTF-8") from None
    fields: dict[str, str] = {}
    for token in text.split("|"):
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise CodecError(f"control field {token[:40]!r} is not key=value")
        if key in fields:
            raise CodecError(f"control field {key!r} given twice")
        fields[key] = value
    return fields


def format_line(fields: Mapping[str, str | int | None]) -> bytes:
    """The control line of ``fields`` (``None`` values left out), newline included;
    ``ValueError`` for a value holding ``|`` or a line break (it would split the line)."""
    parts: list[str] = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if "|" in text or "\n" in text or "\r" in text:
            raise ValueError(f"control field {key!r} holds '|' or a line break")
        parts.append(f"{key}={text}")
    return ("|".join(parts) + "\n").encode()


def cram_response(challenge: str, api_key: str) -> str:
    """The reply to CRAM ``challenge``: sha256 of ``challenge|key`` in hex, ``-``, and
    the key's bucket (its last ``BUCKET_ID_LENGTH`` characters). The key itself never
    goes on the wire."""
    digest = hashlib.sha256(f"{challenge}|{api_key}".encode()).hexdigest()
    return f"{digest}-{api_key[-BUCKET_ID_LENGTH:]}"


def verify_cram(challenge: str, auth: str, api_key: str) -> bool:
    """Whether ``auth`` answers ``challenge`` for ``api_key`` (constant-time compare)."""
    return hmac.compare_digest(auth.encode(), cram_response(challenge, api_key).encode())


# -- events ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Greeting:
    """Gateway -> client, first line: ``lsg_version=...``."""

    lsg_version: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """Gateway -> client: ``cram=...``, the text the client hashes with its key."""

    cram: str


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """Client -> gateway: the CRAM reply and the session's settings."""

    auth: str
    dataset: str
    encoding: str = "dbn"
    compression: str = "none"
    ts_out: bool = False
    heartbeat_interval_s: int | None = None
    client: str = ""

    @property
    def bucket(self) -> str:
        """The key bucket the reply names (the part after the last ``-``)."""
        return self.auth.rpartition("-")[2]


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """Gateway -> client: ``success=1|session_id=...`` or ``success=0|error=...``."""

    success: bool
    session_id: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    """Client -> gateway: one subscription line (a long symbol list spans several,
    the last with ``is_last=1``)."""

    schema: str
    stype_in: str
    symbols: tuple[str, ...]
    start: int | None = None
    """Replay from this UNIX-ns time (within ``REPLAY_WINDOW_NS``); None: from now."""
    snapshot: bool = False
    id: int | None = None
    is_last: bool = True


@dataclass(frozen=True, slots=True)
class SessionStart:
    """Client -> gateway: ``start_session=0``: stream from here on."""


@dataclass(frozen=True, slots=True)
class BadLine:
    """A control line the gateway cannot take; it answers with an error record (the
    session goes on)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side (``receive_data(b"")``)."""


ClientEvent = AuthRequest | Subscription | SessionStart | BadLine | ConnectionClosed | NeedData


def _bool(fields: Mapping[str, str], key: str, default: bool) -> bool:
    value = fields.get(key)
    if value is None or value == "":
        return default
    if value not in ("0", "1"):
        raise CodecError(f"{key}={value[:20]!r} must be 0 or 1")
    return value == "1"


def _int(fields: Mapping[str, str], key: str) -> int | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise CodecError(f"{key}={value[:20]!r} is not a whole number")
    return int(value)


def _auth_request(fields: Mapping[str, str]) -> AuthRequest:
    auth = fields.get("auth", "")
    dataset = fields.get("dataset", "")
    if not auth or not dataset:
        raise CodecError("an authentication request needs auth= and dataset=")
    return AuthRequest(
        auth,
        dataset,
        fields.get("encoding", "dbn"),
        fields.get("compression", "none"),
        _bool(fields, "ts_out", False),
        _int(fields, "heartbeat_interval_s"),
        fields.get("client", ""),
    )


def _subscription(fields: Mapping[str, str]) -> Subscription:
    schema = fields.get("schema", "")
    if not schema:
        raise CodecError("a subscription needs schema=")
    symbols = tuple(s for s in fields.get("symbols", "").split(",") if s)
    if not symbols:
        raise CodecError("a subscription needs symbols=")
    start = _int(fields, "start")
    snapshot = _bool(fields, "snapshot", False)
    if snapshot and start is not None:
        raise CodecError("snapshot=1 cannot be combined with start=")
    return Subscription(
        schema,
        fields.get("stype_in", "raw_symbol"),
        symbols,
        start,
        snapshot,
        _int(fields, "id"),
        _bool(fields, "is_last", True),
    )


class GatewayCodec:
    """The gateway's side of the control half (h11's idiom).

    ``receive_data(bytes)`` buffers (``b""``: EOF); ``next_event()`` returns one
    ``AuthRequest`` / ``Subscription`` / ``SessionStart`` / ``BadLine`` /
    ``ConnectionClosed`` or ``NEED_DATA``; ``greeting()``, ``challenge()``,
    ``accept()``, ``refuse()`` return the bytes to send.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._closed = False
        self._max_line = max_line
        self.cram = secrets.token_urlsafe(24)
        """This session's challenge (random per connection)."""
        self.authenticated = False

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` when it closed its side."""
        if not data:
            self._closed = True
        else:
            self._buffer += data

    def next_event(self) -> ClientEvent:
        """The next client event, or ``NEED_DATA``."""
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > self._max_line:
                raise LineTooLong(f"a control line longer than {self._max_line} bytes")
            return ConnectionClosed() if self._closed else NEED_DATA
        if end > self._max_line:
            raise LineTooLong(f"a control line of {end} bytes (at most {self._max_line})")
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[: end + 1]
        try:
            fields = parse_line(line)
        except CodecError as exc:
            return BadLine(str(exc))
        try:
            if not self.authenticated:
                if "auth" not in fields:
                    return BadLine("expected the authentication request first")
                return _auth_request(fields)
            if "start_session" in fields:
                return SessionStart()
            if "schema" in fields:
                return _subscription(fields)
        except CodecError as exc:
            return BadLine(str(exc))
        return BadLine(f"unknown control line with fields {sorted(fields)[:5]}")

    # -- what the gateway sends ----------------------------------------------------------
    def greeting(self) -> bytes:
        """The first two lines: the version and this session's CRAM challenge."""
        return format_line({"lsg_version": LSG_VERSION}) + format_line({"cram": self.cram})

    def accept(self, session_id: str) -> bytes:
        """The reply to a good authentication request."""
        self.authenticated = True
        return format_line({"success": 1, "session_id": session_id})

    def refuse(self, error: str) -> bytes:
        """The reply to a bad one (the gateway then closes the connection)."""
        return format_line({"success": 0, "error": error.replace("|", "/").replace("\n", " ")})


class MetadataReader:
    """Takes the DBN metadata header off the front of the record stream.

    ``feed(data)`` returns the bytes after the header once it is whole (``None``
    before), and keeps the header in ``header``. The header is ``DBN``, a version
    byte, a u32 length, then that many bytes.
    """

    def __init__(self, max_len: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self._max_len = max_len
        self.header = b""
        """The whole metadata header, once read."""
        self.version = 0

    @property
    def done(self) -> bool:
        """Whether the header is read (every byte after it is a record)."""
        return bool(self.header)

    def feed(self, data: bytes) -> bytes | None:
        """Bytes after the header (possibly ``b""``), or ``None`` if it is not whole yet."""
        buf = self._buffer + data if self._buffer else data
        if len(buf) < _METADATA_PREFIX.size:
            self._buffer = buf
            return None
        magic, version, length = _METADATA_PREFIX.unpack_from(buf)
        if magic != b"DBN":
            raise CodecError(f"the record stream does not start with a DBN header ({magic!r})")
        if version != DBN_VERSION:
            raise CodecError(
                f"the gateway sends DBN version {version}; this plugin reads version {DBN_VERSION}"
            )
        if length > self._max_len:
            raise LineTooLong(f"a DBN metadata header of {length} bytes (at most {self._max_len})")
        end = _METADATA_PREFIX.size + length
        if len(buf) < end:
            self._buffer = buf
            return None
        self.version = version
        self.header = bytes(buf[:end])
        self._buffer = b""
        return bytes(buf[end:])
