"""Sans-I/O codec of the HubFeed protocol (sdk-docs/protocols/ninjatrader.md).

No sockets here. Like h11: ``receive_data(bytes)`` only buffers (``b""`` means
EOF), ``next_event()`` returns one event or ``NEED_DATA``, ``send(event)``
returns the bytes to write. ``ClientCodec`` is the hub's side, ``ServerCodec``
the add-on's (used by the simulator and the conformance tests).

The wire has two halves: short text lines (the handshake both ways, then the
client's control requests) and, from the server after the handshake, one
stream of DBN v3 records. Market-data records are decoded by the core's
compiled decoder, not here; this module only builds and parses the text
lines and the text carried inside the control records (symbol mapping, error,
system), so the plugin can tell which request an acknowledgement belongs to.

Every error raised while decoding received bytes is a ``CodecError`` (a
``hub_core.plugin.DecodeError``); a line longer than ``MAX_LINE_BYTES`` raises
``LineTooLong`` (also a ``FrameTooLarge``) before more than that is buffered (the
kit's ``LineFramer`` splits and bounds the lines). ``NEED_DATA`` is the kit's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from hub_core.plugin import NEED_DATA, DecodeError, FrameTooLarge, LineFramer, NeedData

__all__ = [
    "DEFAULT_SCHEMAS",
    "ERR_AUTH_FAILED",
    "ERR_CONNECTION_LIMIT",
    "ERR_INTERNAL",
    "ERR_INVALID_SUBSCRIPTION",
    "ERR_SYMBOL_RESOLUTION_FAILED",
    "ERROR_TEXT_MAX",
    "HEARTBEAT_TEXT",
    "MAX_HEARTBEAT_S",
    "MAX_RECORD_LEN",
    "MIN_RECORD_LEN",
    "REJECT_AUTH",
    "REJECT_BAD_REQUEST",
    "REJECT_LIMIT",
    "REJECT_VERSION",
    "SYS_HEARTBEAT",
    "SYS_SLOW_READER_WARNING",
    "SYS_SUBSCRIPTION_ACK",
    "SYS_UNSUBSCRIBE_ACK",
    "MAX_LINE_BYTES",
    "MAX_REQUEST_ID",
    "MAX_SYMBOLS_PER_REQUEST",
    "MAX_SYMBOL_BYTES",
    "NEED_DATA",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "SCHEMAS",
    "SYSTEM_TEXT_MAX",
    "BadLine",
    "BadRequest",
    "ClientCodec",
    "CodecError",
    "ConnectionClosed",
    "ControlEvent",
    "DbnData",
    "Greeting",
    "HandshakeAccepted",
    "HandshakeError",
    "HandshakeRejected",
    "Heartbeat",
    "Hello",
    "InvalidState",
    "InvalidSymbol",
    "LineTooLong",
    "NeedData",
    "Notice",
    "Ping",
    "Pong",
    "RequestFailed",
    "ServerCodec",
    "SubscribeAck",
    "Subscribe",
    "SymbolMapped",
    "SymbolRejected",
    "Unsubscribe",
    "UnsubscribeAck",
    "VenueError",
    "chunk_symbols",
    "compute_auth",
    "encode_request",
    "format_fields",
    "parse_control",
    "parse_fields",
    "pong_text",
    "request_error_text",
    "subscribe_ack_text",
    "symbol_error_text",
    "unsubscribe_ack_text",
    "validate_symbol",
    "verify_auth",
]

PROTOCOL_NAME: Final = "hubfeed"
"""Value of ``protocol=`` in the server's greeting."""
PROTOCOL_VERSION: Final = 1
"""The protocol version this codec speaks."""
MAX_LINE_BYTES: Final = 4096
"""Longest text line either side may send, the ``\\n`` included."""
MAX_SYMBOL_BYTES: Final = 70
"""Longest symbol (ASCII, so bytes = characters): DBN v3 symbol fields hold 71 with the NUL."""
MAX_SYMBOLS_PER_REQUEST: Final = 256
MAX_REQUEST_ID: Final = 0xFFFF_FFFF
MAX_HEARTBEAT_S: Final = 300
ERROR_TEXT_MAX: Final = 301
"""Longest text of a DBN v3 error record (302 bytes with the NUL)."""
SYSTEM_TEXT_MAX: Final = 302
"""Longest text of a DBN v3 system record (303 bytes with the NUL)."""
MIN_RECORD_LEN: Final = 320
"""The largest record this protocol uses (error and system records)."""
MAX_RECORD_LEN: Final = 1020
"""The largest length a DBN record header can state (255 x 4 bytes)."""

SCHEMAS: Final = ("trades", "mbp-1", "mbo")
DEFAULT_SCHEMAS: Final = SCHEMAS

# DBN v3 ErrorCode / SystemCode values (databento_dbn.ErrorCode, SystemCode)
ERR_AUTH_FAILED: Final = 1
ERR_CONNECTION_LIMIT: Final = 3
ERR_SYMBOL_RESOLUTION_FAILED: Final = 4
ERR_INVALID_SUBSCRIPTION: Final = 5
ERR_INTERNAL: Final = 6
SYS_HEARTBEAT: Final = 0
SYS_SUBSCRIPTION_ACK: Final = 1
SYS_SLOW_READER_WARNING: Final = 2
SYS_UNSUBSCRIBE_ACK: Final = 5

# handshake rejection codes (``success=0|code=...``)
REJECT_AUTH: Final = "auth"
REJECT_VERSION: Final = "version"
REJECT_LIMIT: Final = "limit"
REJECT_BAD_REQUEST: Final = "bad_request"

_KEY_RE: Final = re.compile(r"[a-z_][a-z0-9_]{0,31}\Z")
# values: any text but the separators and control characters (C0 and DEL)
_BAD_VALUE_RE: Final = re.compile(r"[|\x00-\x1f\x7f]")
_CRAM_RE: Final = re.compile(r"[0-9A-Za-z]{16,128}\Z")
_AUTH_RE: Final = re.compile(r"[0-9a-f]{64}\Z")
_UINT_RE: Final = re.compile(r"[0-9]{1,10}\Z")
# printable ASCII but ',' and '|' (DBN symbol fields are ASCII; ',' and '|' separate)
_SYMBOL_RE: Final = re.compile(r"[\x20-\x2b\x2d-\x7b\x7d\x7e]+\Z")


# -- errors -------------------------------------------------------------------
class CodecError(DecodeError):
    """Bytes the HubFeed codec cannot use. Base of every error this module raises."""


class LineTooLong(CodecError, FrameTooLarge):
    """A text line exceeds ``MAX_LINE_BYTES``."""


class BadLine(CodecError):
    """A text line that is not ``key=value|key=value`` in UTF-8."""


class HandshakeError(CodecError):
    """The peer broke the handshake (not a HubFeed peer, or an impossible reply)."""


class InvalidSymbol(CodecError):
    """A symbol this protocol cannot carry (empty, too long, separator characters)."""


class InvalidState(CodecError):
    """``send()`` of an event the protocol does not allow in the current state."""


# -- events -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Greeting:
    """Server -> client, first line: who the server is and the logon challenge."""

    version: int
    cram: str
    server: str = ""


@dataclass(frozen=True, slots=True)
class Hello:
    """Client -> server, the logon line.

    Built by the client with ``password`` (the codec turns it into ``auth``, the
    password itself never goes on the wire); parsed by the server with ``auth``.
    """

    version: int = PROTOCOL_VERSION
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    auth: str | None = None
    heartbeat_s: int | None = None
    client: str = ""


@dataclass(frozen=True, slots=True)
class HandshakeAccepted:
    """Server -> client: logon accepted; DBN records follow this line."""

    session_id: str
    heartbeat_s: int
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class HandshakeRejected:
    """Server -> client: logon refused (``code`` is auth, version, limit or bad_request);
    the server closes the connection after this line."""

    code: str
    error: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Client -> server: start streaming ``symbols`` for ``schemas``."""

    req_id: int
    symbols: tuple[str, ...]
    schemas: tuple[str, ...] = DEFAULT_SCHEMAS


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Client -> server: stop streaming ``symbols``."""

    req_id: int
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    """Client -> server: answer with a pong system record (liveness probe)."""

    req_id: int


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A control line the server could parse as fields but not as a request.

    Not fatal: the server answers with an error record and goes on.
    ``req_id`` is 0 when the line had no usable ``id``.
    """

    op: str
    req_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class DbnData:
    """Server -> client after the handshake: raw DBN bytes, not necessarily whole records."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side (``receive_data(b"")``) and everything was consumed."""


ClientEvent = Greeting | HandshakeAccepted | HandshakeRejected | DbnData | ConnectionClosed
ServerEvent = Hello | Subscribe | Unsubscribe | Ping | BadRequest | ConnectionClosed


# -- control records, as the client sees them (``ConnectionSink.control``) ------
@dataclass(frozen=True, slots=True)
class SymbolMapped:
    """A symbol-mapping record: ``symbol`` is subscribed as ``instrument_id``."""

    instrument_id: int
    symbol: str


@dataclass(frozen=True, slots=True)
class SymbolRejected:
    """An error record refusing one symbol of request ``req_id``."""

    req_id: int
    symbol: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """An error record failing request ``req_id`` as a whole (no ack follows)."""

    op: str
    req_id: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SubscribeAck:
    """System record (code 1): request ``req_id`` is complete."""

    req_id: int
    accepted: int
    rejected: int


@dataclass(frozen=True, slots=True)
class UnsubscribeAck:
    """System record (code 5): unsubscribe request ``req_id`` is complete."""

    req_id: int
    removed: int


@dataclass(frozen=True, slots=True)
class Pong:
    """System record (code 0) answering ``Ping(req_id)``."""

    req_id: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """System record (code 0) the server sends when it has been silent."""


@dataclass(frozen=True, slots=True)
class VenueError:
    """An error record tied to no request (e.g. the add-on lost its data feed)."""

    code: int
    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Any other system record (e.g. slow-reader warning, code 2)."""

    code: int
    text: str


ControlEvent = (
    SymbolMapped
    | SymbolRejected
    | RequestFailed
    | SubscribeAck
    | UnsubscribeAck
    | Pong
    | Heartbeat
    | VenueError
    | Notice
)


# -- fields -------------------------------------------------------------------
def parse_fields(line: bytes) -> dict[str, str]:
    """``b"k=v|k2=v2"`` (no ``\\n``; a trailing ``\\r`` is dropped) -> ``{"k": "v", ...}``.

    Raises ``BadLine`` for anything else: bad UTF-8, a field without ``=``, a
    key that is not ``[a-z_][a-z0-9_]*`` (max 32), a control character in a
    value, or a key given twice.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadLine("line is not valid UTF-8") from None
    out: dict[str, str] = {}
    for part in text.split("|"):
        key, sep, value = part.partition("=")
        if not sep:
            raise BadLine(f"field {_clip(part)!r} has no '='")
        if _KEY_RE.match(key) is None:
            raise BadLine(f"bad field name {_clip(key)!r}")
        if _BAD_VALUE_RE.search(value) is not None:
            raise BadLine(f"field {key!r} holds a control character")
        if key in out:
            raise BadLine(f"field {key!r} given twice")
        out[key] = value
    return out


def format_fields(pairs: Iterable[tuple[str, str]]) -> bytes:
    """``[("k", "v"), ...]`` -> ``b"k=v|...\\n"``; raises ``BadLine`` or ``LineTooLong``."""
    parts = []
    for key, value in pairs:
        if _KEY_RE.match(key) is None:
            raise BadLine(f"bad field name {key!r}")
        if _BAD_VALUE_RE.search(value) is not None:
            raise BadLine(f"field {key!r} holds '|' or a control character")
        parts.append(f"{key}={value}")
    line = ("|".join(parts) + "\n").encode("utf-8")
    if len(line) > MAX_LINE_BYTES:
        raise LineTooLong(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    return line


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _uint(fields: dict[str, str], key: str, lo: int, hi: int) -> int:
    raw = fields.get(key)
    if raw is None:
        raise BadLine(f"missing field {key!r}")
    if _UINT_RE.match(raw) is None:
        raise BadLine(f"field {key!r} is not an unsigned integer: {_clip(raw)!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadLine(f"field {key!r} = {value} is outside {lo}..{hi}")
    return value


def validate_symbol(symbol: str) -> None:
    """Raise ``InvalidSymbol`` unless ``symbol`` can travel in a request and a DBN record:
    1..70 printable ASCII characters, no ``,`` or ``|``, no leading or trailing space."""
    if not symbol:
        raise InvalidSymbol("empty symbol")
    if _SYMBOL_RE.match(symbol) is None:
        raise InvalidSymbol(f"symbol {_clip(symbol)!r} must be printable ASCII without ',' or '|'")
    if symbol != symbol.strip(" "):
        raise InvalidSymbol(f"symbol {symbol!r} has leading or trailing spaces")
    if len(symbol) > MAX_SYMBOL_BYTES:
        raise InvalidSymbol(f"symbol {_clip(symbol)!r} is longer than {MAX_SYMBOL_BYTES} bytes")


def _parse_symbols(raw: str) -> tuple[str, ...]:
    symbols = tuple(raw.split(","))
    if len(symbols) > MAX_SYMBOLS_PER_REQUEST:
        raise BadLine(f"{len(symbols)} symbols in one request; at most {MAX_SYMBOLS_PER_REQUEST}")
    for s in symbols:
        try:
            validate_symbol(s)
        except InvalidSymbol as exc:
            raise BadLine(str(exc)) from None
    return symbols


def _parse_schemas(raw: str) -> tuple[str, ...]:
    schemas = tuple(raw.split(","))
    for s in schemas:
        if s not in SCHEMAS:
            raise BadLine(f"unknown schema {_clip(s)!r}; use {', '.join(SCHEMAS)}")
    return schemas


# -- authentication -----------------------------------------------------------
def compute_auth(cram: str, password: str) -> str:
    """The ``auth`` value: lowercase hex of HMAC-SHA256(key=password, msg=cram)."""
    return hmac.new(password.encode("utf-8"), cram.encode("ascii"), hashlib.sha256).hexdigest()


def verify_auth(cram: str, password: str, auth: str) -> bool:
    """True when ``auth`` answers ``cram`` for ``password`` (constant-time compare)."""
    return hmac.compare_digest(compute_auth(cram, password), auth)


# -- lines ------------------------------------------------------------------
def _new_lines() -> LineFramer:
    # MAX_LINE_BYTES counts the \n; a \r before it stays, for parse_fields to drop
    return LineFramer(MAX_LINE_BYTES - 1, strip_cr=False)


def _pop_line(lines: LineFramer) -> bytes | None:
    """The next complete line (None: none yet); ``LineTooLong`` once the framer holds
    ``MAX_LINE_BYTES`` of a line without its ``\n``."""
    try:
        line = lines.next_frame()
    except FrameTooLarge:
        raise LineTooLong(f"no end of line within {MAX_LINE_BYTES} bytes") from None
    return None if isinstance(line, NeedData) else line


# -- client -------------------------------------------------------------------
_C_GREETING: Final = "await_greeting"
_C_HELLO: Final = "send_hello"
_C_REPLY: Final = "await_reply"
_C_STREAMING: Final = "streaming"
_C_CLOSED: Final = "closed"


class ClientCodec:
    """The hub's side of one HubFeed connection.

    Order: ``next_event()`` -> ``Greeting``; ``send(Hello(...))``;
    ``next_event()`` -> ``HandshakeAccepted`` (or ``HandshakeRejected``); then
    ``DbnData`` events for the DBN stream and ``send(Subscribe|Unsubscribe|Ping)``.
    """

    def __init__(self) -> None:
        self._lines = _new_lines()
        self._chunks: list[bytes] = []
        self._eof = False
        self.state = _C_GREETING
        self.greeting: Greeting | None = None
        self.accepted: HandshakeAccepted | None = None

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server; ``b""`` means the server closed its side."""
        if not data:
            self._eof = True
        elif self.state == _C_STREAMING:
            self._chunks.append(bytes(data))
        else:
            self._lines.feed(data)

    def next_event(self) -> ClientEvent | NeedData:
        """The next complete event, or ``NEED_DATA``."""
        state = self.state
        if state == _C_STREAMING:
            if self._chunks:
                return DbnData(self._chunks.pop(0))
            return ConnectionClosed() if self._eof else NEED_DATA
        if state in (_C_GREETING, _C_REPLY):
            line = _pop_line(self._lines)
            if line is None:
                return ConnectionClosed() if self._eof else NEED_DATA
            if state == _C_GREETING:
                return self._on_greeting(line)
            return self._on_reply(line)
        if state == _C_CLOSED or self._eof:
            return ConnectionClosed()
        return NEED_DATA  # _C_HELLO: our turn to send

    def _on_greeting(self, line: bytes) -> Greeting:
        try:
            fields = parse_fields(line)
        except BadLine as exc:
            raise HandshakeError(f"greeting is not a HubFeed greeting: {exc}") from None
        if fields.get("protocol") != PROTOCOL_NAME:
            raise HandshakeError(
                f"greeting names protocol {_clip(fields.get('protocol', ''))!r}, "
                f"not {PROTOCOL_NAME!r}"
            )
        try:
            version = _uint(fields, "version", 1, 65535)
        except BadLine as exc:
            raise HandshakeError(f"greeting: {exc}") from None
        cram = fields.get("cram", "")
        if _CRAM_RE.match(cram) is None:
            raise HandshakeError("greeting has no valid cram challenge")
        greeting = Greeting(version, cram, fields.get("server", ""))
        self.greeting = greeting
        self.state = _C_HELLO
        return greeting

    def _on_reply(self, line: bytes) -> HandshakeAccepted | HandshakeRejected:
        try:
            fields = parse_fields(line)
        except BadLine as exc:
            raise HandshakeError(f"logon reply is malformed: {exc}") from None
        success = fields.get("success")
        if success == "1":
            try:
                heartbeat = _uint(fields, "heartbeat_s", 1, MAX_HEARTBEAT_S)
                version = _uint(fields, "version", 1, 65535) if "version" in fields else 1
            except BadLine as exc:
                raise HandshakeError(f"logon reply: {exc}") from None
            accepted = HandshakeAccepted(fields.get("session_id", ""), heartbeat, version)
            self.accepted = accepted
            self.state = _C_STREAMING
            rest = self._lines.take_rest()
            if rest:
                self._chunks.append(rest)
            return accepted
        if success == "0":
            self.state = _C_CLOSED
            return HandshakeRejected(fields.get("code", ""), fields.get("error", ""))
        raise HandshakeError("logon reply has no success=0|1 field")

    def send(self, event: Hello | Subscribe | Unsubscribe | Ping) -> bytes:
        """The bytes that carry ``event`` to the server."""
        if isinstance(event, Hello):
            if self.state != _C_HELLO or self.greeting is None:
                raise InvalidState(f"cannot send Hello in state {self.state}")
            pairs = [("version", str(event.version))]
            if event.user is not None or event.password is not None:
                if event.user is None or event.password is None:
                    raise InvalidState("give both user and password, or neither")
                pairs.append(("user", event.user))
                pairs.append(("auth", compute_auth(self.greeting.cram, event.password)))
            if event.heartbeat_s is not None:
                pairs.append(("heartbeat_s", str(event.heartbeat_s)))
            if event.client:
                pairs.append(("client", event.client))
            data = format_fields(pairs)
            self.state = _C_REPLY
            return data
        if self.state != _C_STREAMING:
            raise InvalidState(f"cannot send {type(event).__name__} in state {self.state}")
        return encode_request(event)


def encode_request(event: Subscribe | Unsubscribe | Ping) -> bytes:
    """A control line (client -> server) for ``event``; validates ids and symbols."""
    if not 1 <= event.req_id <= MAX_REQUEST_ID:
        raise BadLine(f"request id {event.req_id} is outside 1..{MAX_REQUEST_ID}")
    if isinstance(event, Ping):
        return format_fields([("op", "ping"), ("id", str(event.req_id))])
    if not event.symbols:
        raise BadLine("a request needs at least one symbol")
    if len(event.symbols) > MAX_SYMBOLS_PER_REQUEST:
        raise BadLine(f"{len(event.symbols)} symbols; at most {MAX_SYMBOLS_PER_REQUEST}")
    for s in event.symbols:
        validate_symbol(s)
    pairs = [
        ("op", "subscribe" if isinstance(event, Subscribe) else "unsubscribe"),
        ("id", str(event.req_id)),
        ("symbols", ",".join(event.symbols)),
    ]
    if isinstance(event, Subscribe):
        if not event.schemas or any(s not in SCHEMAS for s in event.schemas):
            raise BadLine(f"schemas must be some of {', '.join(SCHEMAS)}")
        pairs.append(("schemas", ",".join(event.schemas)))
    return format_fields(pairs)


# -- server -------------------------------------------------------------------
_S_GREETING: Final = "send_greeting"
_S_HELLO: Final = "await_hello"
_S_REPLY: Final = "send_reply"
_S_STREAMING: Final = "streaming"
_S_CLOSED: Final = "closed"


class ServerCodec:
    """The add-on's side of one HubFeed connection (the simulator uses it).

    Order: ``send(Greeting(...))``; ``next_event()`` -> ``Hello``;
    ``send(HandshakeAccepted|HandshakeRejected)``; then ``next_event()`` yields
    ``Subscribe``, ``Unsubscribe``, ``Ping`` or ``BadRequest``. DBN records are
    written by the caller (``hub_core.simulation`` DBN encoders plus the ``*_text`` helpers
    here for control records).
    """

    def __init__(self) -> None:
        self._lines = _new_lines()
        self._eof = False
        self.state = _S_GREETING
        self.cram = ""

    @staticmethod
    def new_cram() -> str:
        """A fresh logon challenge: 32 random lowercase hex characters."""
        return secrets.token_hex(16)

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the client; ``b""`` means the client closed its side."""
        if not data:
            self._eof = True
        else:
            self._lines.feed(data)

    def next_event(self) -> ServerEvent | NeedData:
        """The next complete event, or ``NEED_DATA``."""
        if self.state not in (_S_HELLO, _S_STREAMING):
            return ConnectionClosed() if self.state == _S_CLOSED else NEED_DATA
        while True:
            line = _pop_line(self._lines)
            if line is None:
                return ConnectionClosed() if self._eof else NEED_DATA
            if line in (b"", b"\r"):
                continue  # empty lines are allowed and ignored
            if self.state == _S_HELLO:
                return self._on_hello(line)
            return _parse_request(line)

    def _on_hello(self, line: bytes) -> Hello:
        try:
            fields = parse_fields(line)
            version = _uint(fields, "version", 1, 65535)
            heartbeat = (
                _uint(fields, "heartbeat_s", 1, MAX_HEARTBEAT_S)
                if "heartbeat_s" in fields
                else None
            )
        except BadLine as exc:
            raise HandshakeError(f"logon line is malformed: {exc}") from None
        user = fields.get("user")
        auth = fields.get("auth")
        if (user is None) != (auth is None):
            raise HandshakeError("logon line must carry both user and auth, or neither")
        if auth is not None and _AUTH_RE.match(auth) is None:
            raise HandshakeError("auth must be 64 lowercase hex characters")
        self.state = _S_REPLY
        return Hello(version, user, None, auth, heartbeat, fields.get("client", ""))

    def send(self, event: Greeting | HandshakeAccepted | HandshakeRejected) -> bytes:
        """The bytes that carry ``event`` to the client."""
        if isinstance(event, Greeting):
            if self.state != _S_GREETING:
                raise InvalidState(f"cannot send Greeting in state {self.state}")
            if _CRAM_RE.match(event.cram) is None:
                raise InvalidState("cram must be 16-128 ASCII letters or digits")
            self.cram = event.cram
            pairs = [
                ("protocol", PROTOCOL_NAME),
                ("version", str(event.version)),
                ("cram", event.cram),
            ]
            if event.server:
                pairs.append(("server", event.server))
            data = format_fields(pairs)
            self.state = _S_HELLO
            return data
        # a rejection may also answer a logon line that could not be parsed
        allowed = (_S_REPLY,) if isinstance(event, HandshakeAccepted) else (_S_REPLY, _S_HELLO)
        if self.state not in allowed:
            raise InvalidState(f"cannot send {type(event).__name__} in state {self.state}")
        if isinstance(event, HandshakeAccepted):
            self.state = _S_STREAMING
            return format_fields(
                [
                    ("success", "1"),
                    ("session_id", event.session_id),
                    ("heartbeat_s", str(event.heartbeat_s)),
                    ("version", str(event.version)),
                ]
            )
        self.state = _S_CLOSED
        return format_fields(
            [("success", "0"), ("code", event.code), ("error", _one_line(event.error))]
        )

    def verify(self, hello: Hello, password: str) -> bool:
        """True when ``hello.auth`` proves ``password`` for this connection's challenge."""
        return (
            hello.auth is not None
            and bool(self.cram)
            and verify_auth(self.cram, password, hello.auth)
        )


def _parse_request(line: bytes) -> Subscribe | Unsubscribe | Ping | BadRequest:
    try:
        fields = parse_fields(line)
    except BadLine as exc:
        return BadRequest("", 0, str(exc))
    op = fields.get("op", "")
    try:
        req_id = _uint(fields, "id", 1, MAX_REQUEST_ID)
    except BadLine as exc:
        return BadRequest(_clip(op, 16), 0, str(exc))
    try:
        if op == "ping":
            return Ping(req_id)
        if op == "subscribe":
            symbols = _parse_symbols(fields.get("symbols", ""))
            schemas = _parse_schemas(fields["schemas"]) if "schemas" in fields else SCHEMAS
            return Subscribe(req_id, symbols, schemas)
        if op == "unsubscribe":
            return Unsubscribe(req_id, _parse_symbols(fields.get("symbols", "")))
    except BadLine as exc:
        return BadRequest(op, req_id, str(exc))
    return BadRequest(_clip(op, 16), req_id, f"unknown op {_clip(op)!r}")


# -- control record texts (server builds, client parses) --------------------------
def _one_line(text: str) -> str:
    return _BAD_VALUE_RE.sub(" ", text)


def _fit(prefix: str, reason: str, limit: int) -> str:
    """``prefix + reason`` cut to ``limit`` UTF-8 bytes, cutting only the reason."""
    reason = _one_line(reason)
    budget = limit - len(prefix.encode("utf-8"))
    raw = reason.encode("utf-8")
    if len(raw) > budget:
        reason = raw[: max(budget, 0)].decode("utf-8", "ignore")
    return prefix + reason


def symbol_error_text(op: str, req_id: int, symbol: str, reason: str) -> str:
    """Text of the error record that refuses one symbol of a request."""
    return _fit(f"op={op}|id={req_id}|symbol={symbol}|error=", reason, ERROR_TEXT_MAX)


def request_error_text(op: str, req_id: int, reason: str) -> str:
    """Text of the error record that fails a whole request (``req_id`` 0: unparsable line)."""
    return _fit(f"op={_one_line(op) or 'unknown'}|id={req_id}|error=", reason, ERROR_TEXT_MAX)


def subscribe_ack_text(req_id: int, accepted: int, rejected: int) -> str:
    """Text of the system record (code 1) that completes a subscribe request."""
    return f"op=subscribe|id={req_id}|accepted={accepted}|rejected={rejected}"


def unsubscribe_ack_text(req_id: int, removed: int) -> str:
    """Text of the system record (code 5) that completes an unsubscribe request."""
    return f"op=unsubscribe|id={req_id}|removed={removed}"


def pong_text(req_id: int) -> str:
    """Text of the system record (code 0) that answers a ping."""
    return f"op=pong|id={req_id}"


HEARTBEAT_TEXT: Final = "Heartbeat"
"""Text of an unsolicited heartbeat system record (code 0), as Databento's gateway sends."""


def _lenient_fields(text: str) -> dict[str, str]:
    # control texts are parsed leniently: they come out of the compiled decoder's
    # callback, which must never raise, and an unparsable text is just a notice
    try:
        return parse_fields(text.encode("utf-8"))
    except (BadLine, UnicodeEncodeError):
        return {}


def _int_or(fields: dict[str, str], key: str, default: int) -> int:
    raw = fields.get(key, "")
    return int(raw) if _UINT_RE.match(raw) else default


def parse_control(kind: str, number: int, text: str) -> ControlEvent:
    """Classify one control record as ``ConnectionSink.control(kind, number, text)``
    reports it. Never raises: text it cannot place becomes ``VenueError``/``Notice``."""
    if kind == "symbol_mapping":
        return SymbolMapped(number, text)
    if kind == "error":
        fields = _lenient_fields(text)
        req_id = _int_or(fields, "id", -1)
        if req_id >= 0 and "op" in fields:
            reason = fields.get("error", "")
            if "symbol" in fields:
                return SymbolRejected(req_id, fields["symbol"], number, reason)
            return RequestFailed(fields["op"], req_id, number, reason)
        return VenueError(number, text)
    if kind == "system":
        fields = _lenient_fields(text)
        op = fields.get("op")
        req_id = _int_or(fields, "id", -1)
        if number == SYS_HEARTBEAT:
            if op == "pong" and req_id >= 0:
                return Pong(req_id)
            return Heartbeat()
        if number == SYS_SUBSCRIPTION_ACK and op == "subscribe" and req_id >= 0:
            accepted = _int_or(fields, "accepted", 0)
            return SubscribeAck(req_id, accepted, _int_or(fields, "rejected", 0))
        if number == SYS_UNSUBSCRIBE_ACK and op == "unsubscribe" and req_id >= 0:
            return UnsubscribeAck(req_id, _int_or(fields, "removed", 0))
        return Notice(number, text)
    return Notice(number, text)


def chunk_symbols(symbols: Sequence[str]) -> list[tuple[str, ...]]:
    """Split ``symbols`` into request-sized groups: at most ``MAX_SYMBOLS_PER_REQUEST``
    each, and short enough that the request line fits in ``MAX_LINE_BYTES``."""
    # room for "op=unsubscribe|id=4294967295|symbols=" and "|schemas=trades,mbp-1,mbo\n"
    budget = MAX_LINE_BYTES - 96
    groups: list[tuple[str, ...]] = []
    current: list[str] = []
    used = 0
    for s in symbols:
        n = len(s.encode("utf-8")) + 1
        if current and (used + n > budget or len(current) >= MAX_SYMBOLS_PER_REQUEST):
            groups.append(tuple(current))
            current, used = [], 0
        current.append(s)
        used += n
    if current:
        groups.append(tuple(current))
    return groups
