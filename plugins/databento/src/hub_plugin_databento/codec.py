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
from collections import deque
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
    "ReplayFilter",
    "Resume",
    "StreamTail",
    "SessionStart",
    "Subscription",
    "cram_response",
    "format_line",
    "parse_line",
    "record_start_ts",
    "schema_rtype",
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


# -- gap-free reconnect: where the last session ended, and the seam of the next ---------
RTYPE_SYSTEM: Final = 0x17
RTYPE_ERROR: Final = 0x15
RTYPE_SYMBOL_MAPPING: Final = 0x16
_RECV_FILTERED: Final = frozenset((0xC3, 0xC4, 0xC0, 0xC1, 0xC2))
"""BBO and CBBO rtypes: the gateway's ``start`` filters them on ``ts_recv``, not ``ts_event``."""
_CONTROL_RTYPES: Final = frozenset((RTYPE_SYSTEM, RTYPE_ERROR, RTYPE_SYMBOL_MAPPING))
_SCHEMA_RTYPES: Final = {
    "trades": 0x00,
    "tbbo": 0x01,
    "mbp-1": 0x01,
    "mbp-10": 0x0A,
    "mbo": 0xA0,
    "bbo-1s": 0xC3,
    "bbo-1m": 0xC4,
}
"""The rtype of each schema's records (tbbo and mbp-1 share the mbp-1 layout and rtype)."""


def schema_rtype(schema: str) -> int:
    """The DBN rtype a schema's records carry."""
    return _SCHEMA_RTYPES[schema]


def record_start_ts(record: bytes) -> int:
    """The time the gateway's ``start`` filters ``record`` on: ``ts_recv`` for BBO and
    CBBO records, ``ts_event`` (header) for the others."""
    if record[1] in _RECV_FILTERED:
        return int.from_bytes(record[32:40], "little")
    return int.from_bytes(record[8:16], "little")


def _whole_records(data: bytes, start: int) -> tuple[list[tuple[int, int]], int]:
    """``(offset, length)`` of every whole record from ``start``, and where the first
    incomplete one begins."""
    out: list[tuple[int, int]] = []
    pos, n = start, len(data)
    while pos < n:
        length = data[pos] * 4
        if length < 16 or pos + length > n:
            break
        out.append((pos, length))
        pos += length
    return out, pos


@dataclass
class Resume:
    """Where a connection's stream stopped, kept across its sessions.

    ``seams`` is the last record received of each rtype (its bytes: a replayed copy
    is byte for byte the same record); ``window_start_ts`` the start time of the oldest
    record of the retained tail (a schema absent from the tail replays from there).
    """

    seams: dict[int, bytes]
    window_start_ts: int

    def start_for(self, schema: str) -> int:
        """The ``start`` that replays ``schema`` from its last record received."""
        seam = self.seams.get(schema_rtype(schema))
        return record_start_ts(seam) if seam is not None else self.window_start_ts


class StreamTail:
    """The last buffers of the record stream, by reference, so the end of a session can
    be found without looking at any record while the session runs.

    ``note(buffer, first)`` after each buffer given to the decoder (``first``: where its
    first whole record begins); ``resume()`` walks the retained buffers once, when the
    session is over. At least ``keep_bytes`` are retained.
    """

    def __init__(self, keep_bytes: int = 1024 * 1024) -> None:
        self._keep = keep_bytes
        self._buffers: deque[tuple[bytes, int]] = deque()
        self._held = 0

    def note(self, buffer: bytes, first: int) -> None:
        """Retain ``buffer`` (no copy), whose first record boundary is at ``first``."""
        self._buffers.append((buffer, first))
        self._held += len(buffer)
        while self._held - len(self._buffers[0][0]) >= self._keep:
            old, _ = self._buffers.popleft()
            self._held -= len(old)

    def resume(self) -> Resume | None:
        """The last record of each rtype in the retained tail (control records left
        out), or None if it holds no market record."""
        if not self._buffers:
            return None
        first = self._buffers[0][1]
        data = b"".join(b for b, _ in self._buffers)[first:]
        records, _ = _whole_records(data, 0)
        seams: dict[int, bytes] = {}
        window_start = 0
        for pos, length in records:
            rtype = data[pos + 1]
            if rtype in _CONTROL_RTYPES:
                continue
            record = data[pos : pos + length]
            if not window_start:
                window_start = record_start_ts(record)
            seams[rtype] = record
        if not seams:
            return None
        return Resume(seams, window_start)


class ReplayFilter:
    """Drops the records a replay sends again, exactly, at the seam of two sessions.

    A replay of each schema starts at the time of the last record the previous session
    received of it (``Resume.seams``), so the records before that one in the replay
    (same time, earlier in the stream) and the record itself (the same bytes) are
    duplicates. Records of an rtype at the seam's time are held until the seam shows:
    then they are dropped. A record of that rtype past the seam's time, or the end of
    that schema's replay (system code 3), means the replay does not hold the seam (the
    venue lost its history): what was held is new and is passed on, and the rtype goes
    to ``missed`` (the caller reports what could not be replayed). ``feed(data)``
    returns the bytes to decode; ``done`` once no seam is awaited.
    """

    def __init__(self, seams: Mapping[int, bytes]) -> None:
        self._seams = dict(seams)
        self._seam_ts = {rtype: record_start_ts(r) for rtype, r in self._seams.items()}
        self._held: dict[int, list[bytes]] = {rtype: [] for rtype in self._seams}
        self._tail = b""
        self._out: list[bytes] = []
        self.dropped = 0
        """Duplicates dropped at the seam."""
        self.missed: list[int] = []
        """rtypes whose replay did not hold their seam record."""

    @property
    def done(self) -> bool:
        """No seam awaited: what follows is passed on untouched."""
        return not self._seams

    def take_tail(self) -> bytes:
        """The partial record held back (to go in front of the next bytes once done)."""
        tail, self._tail = self._tail, b""
        return tail

    def feed(self, data: bytes) -> bytes:
        """The bytes of ``data`` (after what was held back) that are not duplicates."""
        if self._tail:
            data = self._tail + data
        records, end = _whole_records(data, 0)
        self._tail = data[end:]
        out = self._out
        for pos, length in records:
            record = data[pos : pos + length]
            rtype = record[1]
            seam = self._seams.get(rtype)
            if seam is not None:
                if record == seam:
                    # the seam: it and what was held before it were delivered already
                    self.dropped += len(self._held.pop(rtype)) + 1
                    del self._seams[rtype]
                    continue
                if record_start_ts(record) <= self._seam_ts[rtype]:
                    self._held[rtype].append(record)
                    continue
                self.give_up(rtype)  # past the seam's time without it
            elif rtype == RTYPE_SYSTEM and record[-1] == SYS_REPLAY_COMPLETED:
                self._replay_ended(record)
            out.append(record)
        self._out = []
        return b"".join(out)

    def give_up(self, rtype: int | None = None) -> None:
        """Stop waiting for the seam of ``rtype`` (every seam: None): its replay was
        refused. Those rtypes go to ``missed``."""
        for r in [rtype] if rtype is not None else list(self._seams):
            if self._seams.pop(r, None) is not None:
                self.missed.append(r)
                self._out.extend(self._held.pop(r))  # new records after all: deliver them

    def _replay_ended(self, record: bytes) -> None:
        # "Finished mbp-1 replay": that schema's seam was never reached. A notice that
        # names no schema we know ends the wait for every seam: holding back a live
        # schema's records for a seam that cannot come would lose them.
        text = record[16:-1].split(b"\0", 1)[0].decode("utf-8", "replace")
        named = [rtype for schema, rtype in _SCHEMA_RTYPES.items() if f" {schema} " in f" {text} "]
        if named:
            for rtype in named:
                self.give_up(rtype)
        else:
            self.give_up()
