"""The hub's tick format on NATS, sans-I/O (sdk-docs/protocols/nats-ticks.md).

Subjects, the reversible escaping of names into subject tokens, the headers of a
message, the Nats-Msg-Id, decoding a received message back, the per-subject
sequence check of a receiver and the heartbeat schedule and watch. Nothing here
touches a socket or an event loop: the sink (``sink.py``) and the source
(``connection.py``) move the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import msgspec

FORMAT_VERSION: Final = 1
"""``Hub-Format`` of what this codec writes; a receiver refuses a greater one."""

ESCAPE: Final = "~"
"""Starts an escape in a subject token: ``~`` + two upper-case hex digits is one byte of
the name's UTF-8; ``~`` alone is the empty name."""

RECORD_TYPES: Final = ("trade", "quote", "book_update", "book_snapshot")
"""Types whose payload is DBN records."""
CONTROL_TYPES: Final = ("gap", "state")
"""Types whose payload is one msgspec JSON object."""
TYPES: Final = RECORD_TYPES + CONTROL_TYPES
HEARTBEAT_TOKEN: Final = "_hb"
"""The token after the prefix of a heartbeat subject (``<prefix>._hb.<publisher>``); no
escaped exchange name starts with ``_``, so it never collides with one."""

H_SEQ: Final = "Hub-Seq"
H_COUNT: Final = "Hub-Count"
H_ORIGIN: Final = "Hub-Origin"
H_FORMAT: Final = "Hub-Format"
H_EPOCH: Final = "Hub-Epoch"
H_MSG_ID: Final = "Nats-Msg-Id"

# bytes a token keeps as they are: printable ASCII but the subject's separators and
# wildcards and the escape character itself
_PLAIN: Final = frozenset(range(0x21, 0x7F)) - {ord("."), ord("*"), ord(">"), ord(ESCAPE)}
_HEX: Final = "0123456789ABCDEF"


class CodecError(ValueError):
    """A subject, header or payload that is not of this format (counted, dropped)."""


# -- names <-> subject tokens -------------------------------------------------------------
def escape_token(name: str) -> str:
    """``name`` as one NATS subject token, reversibly (``unescape_token`` undoes it).

    Printable ASCII stays; ``.``, ``*``, ``>``, ``~``, white space, control characters
    and every byte of a non-ASCII character become ``~XX`` (the UTF-8 byte in upper-case
    hex); a leading ``_`` is escaped too (tokens starting with ``_`` are the protocol's);
    the empty name is ``~``. ``BTC/USD`` stays ``BTC/USD``, ``ES.c.0`` is ``ES~2Ec~2E0``.
    """
    if not name:
        return ESCAPE
    if name.isascii() and name.isprintable() and not _needs_escape(name):
        return name
    out: list[str] = []
    for i, byte in enumerate(name.encode("utf-8")):
        if byte in _PLAIN and not (i == 0 and byte == 0x5F):
            out.append(chr(byte))
        else:
            out.append(ESCAPE + _HEX[byte >> 4] + _HEX[byte & 15])
    return "".join(out)


def _needs_escape(name: str) -> bool:
    return name[0] == "_" or any(ch in name for ch in ".*>~ ")


def unescape_token(token: str) -> str:
    """The name ``escape_token`` made ``token`` from; ``CodecError`` for a token it
    cannot have made."""
    if token == ESCAPE:
        return ""
    if not token or any(ch in token for ch in ".*> \t\r\n"):
        raise CodecError(f"{token!r} is not an escaped subject token")
    if token[0] == "_":
        raise CodecError(f"{token!r}: a name's leading '_' is always escaped")
    if ESCAPE not in token:
        return token
    out = bytearray()
    i = 0
    n = len(token)
    while i < n:
        ch = token[i]
        if ch == ESCAPE:
            hexits = token[i + 1 : i + 3]
            if len(hexits) != 2 or any(h not in _HEX for h in hexits):
                raise CodecError(f"{token!r}: '~' must be followed by two upper-case hex digits")
            out.append(int(hexits, 16))
            i += 3
        else:
            if ord(ch) not in _PLAIN:
                raise CodecError(f"{token!r}: {ch!r} is never left unescaped")
            out.append(ord(ch))
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise CodecError(f"{token!r}: the escaped bytes are not UTF-8") from None


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is one or more literal subject tokens (``md``, ``acme.md``);
    ``ValueError`` saying what is wrong otherwise."""
    tokens = prefix.split(".")
    for token in tokens:
        if not token:
            raise ValueError(f"prefix {prefix!r} has an empty token")
        if any(ch in token for ch in "*> \t\r\n") or not token.isascii():
            raise ValueError(f"prefix {prefix!r}: wildcards, white space and non-ASCII are refused")
    if tokens[-1].startswith("_"):
        raise ValueError(f"prefix {prefix!r}: its last token must not start with '_'")
    return prefix


def check_subject_filter(subject: str) -> str:
    """A subscription subject (wildcards ``*`` and a last ``>`` allowed); ``ValueError``."""
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token:
            raise ValueError(f"subject {subject!r} has an empty token")
        if any(ch in token for ch in " \t\r\n"):
            raise ValueError(f"subject {subject!r} has white space")
        if ("*" in token and token != "*") or (">" in token and token != ">"):
            raise ValueError(f"subject {subject!r}: a wildcard is a whole token")
        if token == ">" and i != len(tokens) - 1:
            raise ValueError(f"subject {subject!r}: '>' must be the last token")
    return subject


def data_filter(subject: str, prefix: str) -> str:
    """``subject`` with a last ``>`` spelled as the ``*`` tokens a data subject of
    ``prefix`` has left (``md.binance.>`` -> ``md.binance.*.*``): a JetStream consumer's
    filter must lie inside the stream's ``<prefix>.*.*.*``. Others stay as they are."""
    tokens = subject.split(".")
    wanted = len(prefix.split(".")) + 3
    if tokens[-1] != ">" or not subject.startswith(prefix + "."):
        return subject
    missing = wanted - (len(tokens) - 1)
    if missing < 1:
        return subject
    return ".".join([*tokens[:-1], *(["*"] * missing)])


def subject_of(prefix: str, exchange: str, kind: str, symbol: str) -> str:
    """``<prefix>.<exchange>.<type>.<symbol>`` with the names escaped."""
    return f"{prefix}.{escape_token(exchange)}.{kind}.{escape_token(symbol)}"


def heartbeat_subject(prefix: str, publisher: str) -> str:
    """``<prefix>._hb.<publisher>``."""
    return f"{prefix}.{HEARTBEAT_TOKEN}.{escape_token(publisher)}"


def msg_id(exchange: str, kind: str, symbol: str, seq: int, epoch: int) -> str:
    """The ``Nats-Msg-Id`` of a message: ``<exchange>.<type>.<symbol>.<seq>.<epoch>``
    (tokens escaped). The same message sent again (a retried batch) has the same id,
    so JetStream stores it once; the publisher's epoch keeps a restarted publisher's
    new sequence 1 from being taken for its old one."""
    return f"{escape_token(exchange)}.{kind}.{escape_token(symbol)}.{seq}.{epoch}"


@dataclass(frozen=True, slots=True)
class SubjectParts:
    """What a data subject names."""

    exchange: str
    kind: str
    symbol: str


def parse_subject(subject: str) -> SubjectParts | str:
    """A data subject's exchange, type and symbol (any prefix), or the publisher name
    of a heartbeat subject (a ``str``); ``CodecError`` for anything else."""
    tokens = subject.split(".")
    if len(tokens) >= 3 and tokens[-2] == HEARTBEAT_TOKEN:
        return unescape_token(tokens[-1])
    if len(tokens) < 4 or tokens[-2] not in TYPES:
        raise CodecError(f"{subject[:120]!r} is not <prefix>.<exchange>.<type>.<symbol>")
    return SubjectParts(unescape_token(tokens[-3]), tokens[-2], unescape_token(tokens[-1]))


# -- messages ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outgoing:
    """One NATS message to publish."""

    subject: str
    headers: dict[str, str]
    payload: bytes
    exchange: str
    kind: str
    symbol: str
    seq: int
    count: int


class GapBody(msgspec.Struct, frozen=True):
    """The payload of a ``gap`` message: a ``Gap`` of the publishing hub."""

    start_ts: int
    end_ts: int
    reason: str
    start_seq: int = 0
    end_seq: int = 0
    ts_event: int = 0


class StateBody(msgspec.Struct, frozen=True):
    """The payload of a ``state`` message: a ``ConnectionStateChanged`` of the publishing hub."""

    state: str
    reason: str
    ts_event: int
    endpoint: str = ""
    attempt: int = 0


class HeartbeatBody(msgspec.Struct, frozen=True):
    """The payload of a heartbeat: who, how often, and the last sequence of each subject
    published to since the previous heartbeat (so a receiver sees a lost last message)."""

    publisher: str
    epoch: int
    interval_ms: int
    ts: int
    exchanges: list[str] = msgspec.field(default_factory=list)
    last: dict[str, int] = msgspec.field(default_factory=dict)


_enc = msgspec.json.Encoder()
_gap_dec = msgspec.json.Decoder(GapBody)
_state_dec = msgspec.json.Decoder(StateBody)
_hb_dec = msgspec.json.Decoder(HeartbeatBody)


@dataclass(frozen=True, slots=True)
class Records:
    """A received message of DBN records."""

    exchange: str
    kind: str
    symbol: str
    subject: str
    epoch: int
    seq: int
    count: int
    records: bytes


@dataclass(frozen=True, slots=True)
class GapMessage:
    """A received ``gap`` message."""

    exchange: str
    symbol: str
    subject: str
    epoch: int
    seq: int
    body: GapBody


@dataclass(frozen=True, slots=True)
class StateMessage:
    """A received ``state`` message."""

    exchange: str
    symbol: str
    subject: str
    epoch: int
    seq: int
    body: StateBody


Message = Records | GapMessage | StateMessage | HeartbeatBody


def _header_int(headers: dict[str, str], key: str) -> int:
    text = headers.get(key)
    if text is None:
        raise CodecError(f"no {key} header")
    try:
        value = int(text)
    except ValueError:
        raise CodecError(f"{key}: {text[:40]!r} is not a whole number") from None
    if value < 0:
        raise CodecError(f"{key}: {value} is negative")
    return value


def decode_message(subject: str, headers: dict[str, str] | None, payload: bytes) -> Message:
    """A received NATS message as what it carries; ``CodecError`` for one that is not of
    this format (another version, missing headers, a payload that does not parse)."""
    parts = parse_subject(subject)
    if isinstance(parts, str):
        try:
            return _hb_dec.decode(payload)
        except msgspec.DecodeError as exc:
            raise CodecError(f"heartbeat on {subject[:120]!r}: {exc}") from None
    if not headers:
        raise CodecError(f"{subject[:120]!r}: a message without the hub's headers")
    version = _header_int(headers, H_FORMAT)
    if version != FORMAT_VERSION:
        raise CodecError(
            f"{subject[:120]!r}: Hub-Format {version}, this hub reads {FORMAT_VERSION}"
        )
    epoch = _header_int(headers, H_EPOCH)
    seq = _header_int(headers, H_SEQ)
    origin = headers.get(H_ORIGIN, parts.exchange)
    if origin != parts.exchange:
        raise CodecError(f"{subject[:120]!r}: Hub-Origin {origin[:40]!r} is not the subject's")
    if seq == 0:
        raise CodecError(f"{subject[:120]!r}: Hub-Seq starts at 1")
    kind = parts.kind
    try:
        if kind == "gap":
            return GapMessage(
                parts.exchange, parts.symbol, subject, epoch, seq, _gap_dec.decode(payload)
            )
        if kind == "state":
            body = _state_dec.decode(payload)
            return StateMessage(parts.exchange, parts.symbol, subject, epoch, seq, body)
    except msgspec.DecodeError as exc:
        raise CodecError(f"{kind} on {subject[:120]!r}: {exc}") from None
    count = _header_int(headers, H_COUNT)
    if count == 0 or not payload:
        raise CodecError(f"{subject[:120]!r}: a records message without records")
    return Records(parts.exchange, kind, parts.symbol, subject, epoch, seq, count, payload)


# -- the publishing side -------------------------------------------------------------------
class Publisher:
    """Numbers what one hub publishes: a sequence per subject, from 1, for this epoch.

    ``epoch`` identifies this run of the publisher (its start time in ns by default), so
    a receiver and JetStream tell a restarted publisher's sequence 1 from the old one's.
    """

    def __init__(self, prefix: str, publisher: str, epoch: int, heartbeat_ms: int = 1000) -> None:
        self.prefix = check_prefix(prefix)
        self.publisher = publisher
        self.epoch = epoch
        self.heartbeat_ms = heartbeat_ms
        self._next: dict[str, int] = {}
        self._changed: dict[str, int] = {}
        self._exchanges: dict[str, None] = {}
        self._subjects: dict[tuple[str, str, str], str] = {}

    def _subject(self, exchange: str, kind: str, symbol: str) -> str:
        key = (exchange, kind, symbol)
        subject = self._subjects.get(key)
        if subject is None:
            subject = subject_of(self.prefix, exchange, kind, symbol)
            self._subjects[key] = subject
            self._exchanges[exchange] = None
        return subject

    def _take(self, subject: str, count: int) -> int:
        seq = self._next.get(subject, 1)
        self._next[subject] = seq + count
        return seq

    def sent(self, messages: list[Outgoing]) -> None:
        """``messages`` went out: the next heartbeat names their subjects' last sequence
        (never one still being sent, which a receiver would count as lost)."""
        changed = self._changed
        for m in messages:
            changed[m.subject] = m.seq + m.count - 1

    def _headers(
        self, exchange: str, kind: str, symbol: str, seq: int, count: int
    ) -> dict[str, str]:
        return {
            H_FORMAT: "1",
            H_EPOCH: str(self.epoch),
            H_SEQ: str(seq),
            H_COUNT: str(count),
            H_ORIGIN: exchange,
            H_MSG_ID: msg_id(exchange, kind, symbol, seq, self.epoch),
        }

    def records(
        self, exchange: str, kind: str, symbol: str, records: bytes, count: int
    ) -> Outgoing:
        """A message of ``count`` DBN records of one subject (``kind`` in ``RECORD_TYPES``)."""
        if kind not in RECORD_TYPES:
            raise ValueError(f"{kind!r} is not one of {RECORD_TYPES}")
        subject = self._subject(exchange, kind, symbol)
        seq = self._take(subject, count)
        headers = self._headers(exchange, kind, symbol, seq, count)
        return Outgoing(subject, headers, records, exchange, kind, symbol, seq, count)

    def gap(self, exchange: str, symbol: str, body: GapBody) -> Outgoing:
        """A ``gap`` message."""
        return self._control(exchange, "gap", symbol, _enc.encode(body))

    def state(self, exchange: str, symbol: str, body: StateBody) -> Outgoing:
        """A ``state`` message."""
        return self._control(exchange, "state", symbol, _enc.encode(body))

    def _control(self, exchange: str, kind: str, symbol: str, payload: bytes) -> Outgoing:
        subject = self._subject(exchange, kind, symbol)
        seq = self._take(subject, 1)
        headers = self._headers(exchange, kind, symbol, seq, 1)
        return Outgoing(subject, headers, payload, exchange, kind, symbol, seq, 1)

    def heartbeat(self, now_ns: int) -> tuple[str, bytes]:
        """The heartbeat subject and payload; the subjects it names are forgotten until
        they change again."""
        body = HeartbeatBody(
            self.publisher,
            self.epoch,
            self.heartbeat_ms,
            now_ns,
            list(self._exchanges),
            self._changed,
        )
        self._changed = {}
        return heartbeat_subject(self.prefix, self.publisher), _enc.encode(body)


# -- the receiving side ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Missing:
    """Sequences of one subject that never arrived: ``start_seq..end_seq``, after data
    last seen at ``since_ns`` (wall clock); ``restarted`` when the publisher's epoch
    changed (what it missed while down is unknown, so the whole silence is missing)."""

    subject: str
    start_seq: int
    end_seq: int
    since_ns: int
    restarted: bool = False


@dataclass(slots=True)
class _Track:
    epoch: int
    next_seq: int
    last_ns: int


class SequenceTracker:
    """The per-subject sequence check of a receiver.

    ``check(subject, epoch, seq, count, now)`` says whether a message is new (and what
    went missing before it) or a duplicate to drop. It lives as long as the source's
    factory, so a reconnect picks up where the last session stopped.
    """

    def __init__(self) -> None:
        self._tracks: dict[str, _Track] = {}
        self._claims: dict[str, dict[str, tuple[int, int]]] = {}
        self.duplicates = 0
        """Messages dropped because every record in them was already delivered."""

    def check(
        self, subject: str, epoch: int, seq: int, count: int, now_ns: int
    ) -> tuple[bool, Missing | None]:
        """``(deliver, missing)``: ``deliver`` False for a duplicate; ``missing`` the
        range that did not arrive before this message, if any."""
        track = self._tracks.get(subject)
        end = seq + count
        if track is None:
            self._tracks[subject] = _Track(epoch, end, now_ns)
            return True, None
        if epoch != track.epoch:
            if epoch < track.epoch:
                # an older run of the publisher (a JetStream replay over a restart)
                self.duplicates += 1
                return False, None
            restart = Missing(subject, 1, seq - 1, track.last_ns, True)
            track.epoch, track.next_seq, track.last_ns = epoch, end, now_ns
            return True, restart
        expected = track.next_seq
        if end <= expected:
            self.duplicates += 1
            return False, None
        missing: Missing | None = None
        if seq > expected:
            missing = Missing(subject, expected, seq - 1, track.last_ns)
        track.next_seq = end
        track.last_ns = now_ns
        return True, missing

    def announced(self, hb: HeartbeatBody, now_ns: int) -> list[Missing]:
        """A heartbeat of ``hb.publisher``: what its PREVIOUS heartbeat said was sent and
        has still not arrived is missing (one interval later, so a message still on its
        way through another subscription is never taken for lost); this heartbeat's
        claims are checked at the next one. Subjects this receiver never saw are not."""
        out: list[Missing] = []
        for subject, (epoch, last_seq) in self._claims.pop(hb.publisher, {}).items():
            track = self._tracks.get(subject)
            if track is None or track.epoch != epoch or last_seq < track.next_seq:
                continue
            out.append(Missing(subject, track.next_seq, last_seq, track.last_ns))
            track.next_seq = last_seq + 1
        if hb.last:
            self._claims[hb.publisher] = {s: (hb.epoch, seq) for s, seq in hb.last.items()}
        return out

    def next_seq(self, subject: str) -> int:
        """The next sequence expected on ``subject`` (1 for one never seen)."""
        track = self._tracks.get(subject)
        return 1 if track is None else track.next_seq


@dataclass(slots=True)
class _Peer:
    epoch: int
    interval_ms: int
    last_ns: int
    exchanges: list[str] = field(default_factory=list)
    stale: bool = False


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """A publisher went silent (``stale``), came back, or restarted (a new epoch)."""

    publisher: str
    kind: str  # "stale" | "back" | "restarted"
    since_ns: int
    exchanges: tuple[str, ...]


class HeartbeatWatch:
    """Publishers seen through their heartbeats (monotonic ns); one silent past
    ``factor`` times its interval is stale. Sans-I/O: the source calls ``seen`` per
    heartbeat and ``tick(now)`` at ``next_deadline()``."""

    def __init__(self, factor: float = 3.0) -> None:
        self.factor = factor
        self._peers: dict[str, _Peer] = {}

    def seen(self, hb: HeartbeatBody, now_ns: int) -> PeerEvent | None:
        """A heartbeat arrived."""
        peer = self._peers.get(hb.publisher)
        if peer is None:
            self._peers[hb.publisher] = _Peer(hb.epoch, hb.interval_ms, now_ns, list(hb.exchanges))
            return None
        event = None
        if hb.epoch != peer.epoch:
            event = PeerEvent(hb.publisher, "restarted", peer.last_ns, tuple(peer.exchanges))
        elif peer.stale:
            event = PeerEvent(hb.publisher, "back", peer.last_ns, tuple(peer.exchanges))
        peer.epoch, peer.interval_ms, peer.last_ns, peer.stale = (
            hb.epoch,
            hb.interval_ms,
            now_ns,
            False,
        )
        peer.exchanges = list(dict.fromkeys([*peer.exchanges, *hb.exchanges]))
        return event

    def tick(self, now_ns: int) -> list[PeerEvent]:
        """Publishers that went stale since the last tick."""
        out = []
        for name, peer in self._peers.items():
            if not peer.stale and now_ns - peer.last_ns > self._limit(peer):
                peer.stale = True
                out.append(PeerEvent(name, "stale", peer.last_ns, tuple(peer.exchanges)))
        return out

    def _limit(self, peer: _Peer) -> int:
        return int(peer.interval_ms * self.factor * 1_000_000)

    def next_deadline(self) -> int | None:
        """Monotonic ns of the next possible staleness (None: nobody to watch)."""
        live = [p.last_ns + self._limit(p) for p in self._peers.values() if not p.stale]
        return min(live) if live else None

    def stale(self) -> list[str]:
        """Publishers stale now."""
        return [name for name, peer in self._peers.items() if peer.stale]
