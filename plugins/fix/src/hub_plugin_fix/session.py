"""Sans-I/O FIX session layer (h11-style): bytes in, events out; calls in, bytes out.

``FixSession`` never touches a socket or a timer. The transport feeds it with
``receive_data(data)`` (``b""`` is end of stream) and pulls ``next_event()``
until it returns ``NEED_DATA``; it writes whatever ``data_to_send()`` returns
(automatic answers: heartbeats, gap fills, resend requests, logout replies)
and whatever the explicit calls return (``logon()``, ``market_data_request()``,
``test_request()``, ``logout()``). ``tick()`` is called when
``next_timeout()`` expires: it queues heartbeats and test requests and reports
a silent peer. The clocks are injectable, so every transition is testable
without sockets or sleeping.

Sequence numbers (FIX 4.x session rules, as a market-data session applies them):

* an inbound MsgSeqNum equal to the expected one is processed;
* higher: a ``SequenceGap`` event, a ResendRequest (35=2) for the missing
  range, and the message is *held* with every later one (at most ``MAX_HELD``)
  until the resend fills the gap: resent PossDup messages are processed in order,
  then the held ones. A gap fill over missing numbers, no resend within
  ``max(RESEND_TIMEOUT_MIN_S, 2 heartbeats)`` (``tick()``), or an overflow gives
  the gap up: ``GapUnrecovered`` (the owner publishes a ``Gap`` and asks for new
  snapshots), and the held messages are processed;
* lower with PossDupFlag (43=Y): a duplicate, ignored; lower without it: the
  session is broken (Logout "MsgSeqNum too low", ``SessionFailed`` with the numbers);
* SequenceReset (35=4) in reset mode moves the expected number whatever
  MsgSeqNum says; in gap-fill mode (123=Y) it obeys the rules above;
* a ResendRequest from the counterparty is answered with our kept messages
  (``keep_types``: our MarketDataRequests as initiator, market data as acceptor)
  again, PossDupFlag=Y and OrigSendingTime, and a SequenceReset-GapFill
  (35=4, 43=Y, 123=Y) over each run of the others (administrative messages).

In-sequence 35=W/X messages never become events: the scanner's fast path hands
them straight to the ``MarketDataDecoder`` (which calls the sink).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import simplefix  # type: ignore[import-untyped]

from hub_plugin_fix import messages as msg
from hub_plugin_fix.errors import FixDecodeError
from hub_plugin_fix.marketdata import MarketDataDecoder
from hub_plugin_fix.messages import Header, MsgType, Tag
from hub_plugin_fix.scanner import DEFAULT_MAX_MESSAGE, FixReader, Frame
from hub_plugin_fix.store import MemoryStore

TEST_REQUEST_FACTOR: Final = 1.2
"""Silence of ``heartbeat * 1.2`` triggers a TestRequest (transmission-delay allowance,
as common engines do)."""
TIMEOUT_FACTOR: Final = 1.0
"""A TestRequest unanswered for another heartbeat interval means the peer is gone."""
MAX_HELD: Final = 10_000
"""Messages above a sequence gap held until the resend fills it. At a busy venue's
~2,000 msgs/s that is 5 s of data (a resend normally takes a round trip), about 5 MB
of frames at worst; past it the gap is given up (``GapUnrecovered``) rather than
buffering without bound."""
RESEND_TIMEOUT_MIN_S: Final = 5.0
"""Least time a resend may take before the gap is given up (else 2 heartbeat intervals)."""
KEEP_SENT: Final = 20_000
"""Application messages of ours kept for a ResendRequest (the oldest go first), as
their wire bytes (~200 B each for market data: ~4 MB per session at most)."""
_HEADER_TAGS: Final = frozenset({8, 9, 35, 49, 56, 34, 43, 52, 122, 10})
_HEADER_EXTRA: Final = frozenset({1128})
"""Header fields a kept message carries that a resend repeats in its header."""


# -- events ---------------------------------------------------------------------------
class NeedData:
    """``next_event()`` has nothing more until ``receive_data()`` is called."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


@dataclass(frozen=True)
class LoggedOn:
    """The counterparty accepted our Logon (initiator) / we accepted its (acceptor)."""

    heartbeat_s: int
    reset: bool
    """Both sides restarted their sequence numbers at 1."""


@dataclass(frozen=True)
class LogonRequested:
    """(Acceptor) a Logon arrived; answer with ``accept_logon()`` or ``reject_logon()``."""

    sender_comp_id: str
    target_comp_id: str
    heartbeat_s: int
    reset: bool
    username: str | None
    password: str | None
    default_appl_ver_id: str | None = None
    """DefaultApplVerID (1137) of a FIXT.1.1 Logon (``9`` = FIX.5.0SP2); None if absent."""

    def __repr__(self) -> str:  # the password never reaches a log
        return (
            f"LogonRequested(sender_comp_id={self.sender_comp_id!r}, "
            f"target_comp_id={self.target_comp_id!r}, heartbeat_s={self.heartbeat_s}, "
            f"reset={self.reset}, username={'***' if self.username else None}, "
            f"password={'***' if self.password else None}, "
            f"default_appl_ver_id={self.default_appl_ver_id!r})"
        )


@dataclass(frozen=True)
class LogonRejected:
    """(Initiator) the Logon was refused or its answer is unusable: wrong CompIDs,
    a Logout or Reject in reply, a sequence number below ours. Retrying the same
    Logon would give the same answer."""

    reason: str
    sequence: tuple[int, int] | None = None
    """(expected, received) when the refusal is about sequence numbers (one side reset):
    a Logout "MsgSeqNum too low, expecting 4 but received 1", or a Logon reply below the
    number we expect. 0 stands for a number the counterparty did not say."""


@dataclass(frozen=True)
class SequenceGap:
    """Inbound messages ``expected .. received-1`` are missing; a ResendRequest is queued."""

    expected: int
    received: int


@dataclass(frozen=True)
class GapUnrecovered:
    """Inbound messages ``start .. end`` will not arrive: the counterparty gap-filled
    them instead of resending, the resend did not come in time, or too many messages
    piled up above the gap. The session moved on; data is missing (publish a ``Gap``
    and resynchronise)."""

    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class Malformed:
    """A message that could not be used (garbled framing, bad content); counted, skipped."""

    reason: str


@dataclass(frozen=True)
class SessionReject:
    """Reject (35=3): the counterparty refused one of our messages at session level."""

    ref_seq: int
    ref_tag: int
    ref_msg_type: str
    reason: str
    text: str

    def describe(self) -> str:
        tag = f" tag {self.ref_tag}" if self.ref_tag else ""
        what = f" of our 35={self.ref_msg_type}" if self.ref_msg_type else ""
        return f"Reject{what} seq {self.ref_seq}{tag}: {self.reason or 'no reason'}" + (
            f": {self.text}" if self.text else ""
        )


@dataclass(frozen=True)
class BusinessReject:
    """BusinessMessageReject (35=j): an application message of ours was refused."""

    ref_seq: int
    ref_msg_type: str
    ref_id: str
    reason: str
    text: str

    def describe(self) -> str:
        return (
            f"BusinessMessageReject of our 35={self.ref_msg_type or '?'} seq {self.ref_seq}"
            + (f" (id {self.ref_id})" if self.ref_id else "")
            + f": {self.reason or 'no reason'}"
            + (f": {self.text}" if self.text else "")
        )


@dataclass(frozen=True)
class MarketDataRejected:
    """MarketDataRequestReject (35=Y) for the request ``req_id``."""

    req_id: str
    reason: str
    text: str


@dataclass(frozen=True)
class LoggedOut:
    """The session ended with a Logout exchange."""

    text: str
    by_peer: bool
    """The counterparty started it (else it answered ours)."""


@dataclass(frozen=True)
class SessionFailed:
    """The session cannot go on (sequence too low, wrong CompIDs, silent peer, a message
    that violates the session protocol). A Logout is queued when one makes sense."""

    reason: str
    sequence: tuple[int, int] | None = None
    """(expected, received) when the session failed on sequence numbers."""


@dataclass(frozen=True)
class AppMessage:
    """Any other message (for the acceptor: 35=V requests; for us: news, status...)."""

    frame: Frame


@dataclass(frozen=True)
class ConnectionClosed:
    """End of stream (``receive_data(b"")``) and nothing left to process."""


Event = (
    LoggedOn
    | LogonRequested
    | LogonRejected
    | SequenceGap
    | GapUnrecovered
    | Malformed
    | SessionReject
    | BusinessReject
    | MarketDataRejected
    | LoggedOut
    | SessionFailed
    | AppMessage
    | ConnectionClosed
)


class State:
    """Values of ``FixSession.state``."""

    CONNECTED = "connected"
    """Transport up, nothing said yet."""
    LOGON_SENT = "logon_sent"
    AWAITING_LOGON = "awaiting_logon"
    """(Acceptor) waiting for the counterparty's Logon."""
    LOGON_RECEIVED = "logon_received"
    """(Acceptor) Logon received, not answered yet."""
    ACTIVE = "active"
    LOGOUT_SENT = "logout_sent"
    CLOSED = "closed"
    FAILED = "failed"


def _int(value: bytes | None, default: int = 0) -> int:
    if value is None or not value.isdigit() or len(value) > 18:
        return default
    return int(value)


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("latin-1")


_EXPECTING = re.compile(r"expect(?:ed|ing)?\D{0,20}?(\d{1,18})", re.IGNORECASE)
_RECEIVED = re.compile(r"(?:received|got|but)\D{0,20}?(\d{1,18})", re.IGNORECASE)
_SEQUENCE_WORDS = re.compile(r"msgseqnum|seq\s*num|sequence\s*num|seqnum", re.IGNORECASE)


def _sequence_complaint(text: str, our_seq: int) -> tuple[int, int] | None:
    """(expected, received) when a Logout/Reject text is about sequence numbers (as
    QuickFIX and most engines word it: "MsgSeqNum too low, expecting 4 but received 1"),
    else None. A number the text does not give is taken from what we know (the
    received one is our Logon's) or 0."""
    if not _SEQUENCE_WORDS.search(text):
        return None
    expecting = _EXPECTING.search(text)
    received = _RECEIVED.search(text[expecting.end() :] if expecting else text)
    return (
        int(expecting.group(1)) if expecting else 0,
        int(received.group(1)) if received else our_seq,
    )


class FixSession:
    """One FIX session, initiator (the hub) or acceptor (the simulator), without I/O."""

    def __init__(
        self,
        header: Header,
        *,
        role: str = "initiator",
        store: MemoryStore | None = None,
        heartbeat_s: int = 30,
        reset_on_logon: bool = False,
        username: str | None = None,
        password: str | None = None,
        market_data: MarketDataDecoder | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if role not in ("initiator", "acceptor"):
            raise ValueError(f"role must be 'initiator' or 'acceptor', not {role!r}")
        self.header = header
        self.role = role
        self.store = store if store is not None else MemoryStore()
        self.heartbeat_s = heartbeat_s
        self.reset_on_logon = reset_on_logon
        self._username = username
        self._password = password
        self.market_data = market_data
        self._now = monotonic
        self._wall_ns = wall_ns
        self.reader = FixReader(market_data, max_message, header.begin_string.encode("ascii"))
        self.state = State.CONNECTED if role == "initiator" else State.AWAITING_LOGON
        self._events: deque[Event] = deque()
        self._out = bytearray()
        self._eof = False
        self._closed_reported = False
        now = monotonic()
        self._last_recv = now
        self._last_sent = now
        self._test_req_id = ""
        self._test_req_sent = 0.0
        self._test_req_count = 0
        self._logon: LogonRequested | None = None
        self._logon_seq = 0
        self._logon_sent_seq = 0
        """(Initiator) the MsgSeqNum of our Logon."""
        self.messages_received = 0
        self.gaps = 0
        self.duplicates_ignored = 0
        self.resend_requests: list[tuple[int, int]] = []
        """ResendRequests received (BeginSeqNo, EndSeqNo), for the owner to read and clear."""
        self.keep_types: frozenset[str] = frozenset(
            {MsgType.MARKET_DATA_REQUEST} if role == "initiator" else {"W", "X", "Y"}
        )
        """Types of our messages kept and resent on a ResendRequest (everything else is
        gap-filled): our MarketDataRequests as initiator, market data as acceptor."""
        self._sent: dict[int, tuple[bytes, int]] = {}
        """Kept messages by MsgSeqNum: (wire bytes, SendingTime ns)."""
        self._held: dict[int, Frame | None] = {}
        """Inbound messages above a gap, by MsgSeqNum (None: already processed, the
        Logon that revealed the gap)."""
        self._resend_until = 0
        """Highest MsgSeqNum of the gap being recovered (recovering while the expected
        number is at or below it)."""
        self._resend_deadline = 0.0
        self._gap_filled: tuple[int, int] | None = None
        """Part of the current gap the counterparty gap-filled instead of resending."""
        self.resent = 0
        """Messages of ours resent (PossDupFlag) on a ResendRequest."""
        self.recovered = 0
        """Resent inbound messages that filled a gap."""
        if self.role == "acceptor" or header.target_comp_id:
            self._expect_comp_ids()

    # -- bookkeeping ----------------------------------------------------------------
    @property
    def next_sender_seq(self) -> int:
        """MsgSeqNum of our next message."""
        return self.store.next_sender

    @property
    def expected_seq(self) -> int:
        """MsgSeqNum expected on the next inbound message."""
        return self.reader.expected_seq

    def _expect_comp_ids(self) -> None:
        # inbound headers carry the counterparty's view: its sender is our target
        h = self.header
        if h.target_comp_id:
            self.reader.expect_comp_ids(
                h.target_comp_id.encode("latin-1"), h.sender_comp_id.encode("latin-1")
            )

    def _set_expected(self, seq: int) -> None:
        self.reader.expected_seq = seq
        self.store.next_target = seq

    def flush_store(self) -> None:
        """Persist the inbound number (the connection calls this every so often)."""
        self.store.next_target = self.reader.expected_seq
        if self.store.dirty:
            self.store.save()

    # -- outbound ----------------------------------------------------------------------
    def new_message(self, msg_type: str) -> Any:
        """A ``simplefix.FixMessage`` with our header and the next MsgSeqNum (persisted
        before it is used: a number must never be sent twice)."""
        seq = self.store.next_sender
        self.store.next_sender = seq + 1
        self.store.next_target = self.reader.expected_seq
        self.store.save()
        return msg.new_message(self.header, msg_type, seq, self._wall_ns())

    def _encode(self, m: Any) -> bytes:
        self._last_sent = self._now()
        return msg.encode(m)

    def encode_app(self, m: Any) -> bytes:
        """Wire bytes of an application message made by ``new_message()``; kept for a
        ResendRequest when its type is in ``keep_types``."""
        data = self._encode(m)
        msg_type = (m.message_type or b"").decode("latin-1")
        seq = _int(m.get(Tag.MSG_SEQ_NUM))
        if msg_type in self.keep_types and seq:
            sent = self._sent
            sent[seq] = (data, self._wall_ns())
            if len(sent) > KEEP_SENT:
                del sent[next(iter(sent))]
        return data

    def _possible_duplicate(self, seq: int, data: bytes, sent_ns: int) -> bytes:
        """Message ``seq`` again: the same fields under a new header with PossDupFlag=Y,
        OrigSendingTime = when it was first sent, SendingTime = now."""
        parser = simplefix.FixParser()
        parser.append_buffer(data)
        old = parser.get_message()
        msg_type = (old.message_type or b"").decode("latin-1")
        m = msg.new_message(
            self.header, msg_type, seq, self._wall_ns(), poss_dup=True, orig_sending_time_ns=sent_ns
        )
        for tag_b, value in old.pairs:
            tag = int(tag_b)
            if tag not in _HEADER_TAGS:
                m.append_pair(tag, value, header=tag in _HEADER_EXTRA)
        return self._encode(m)

    def _resend(self, begin: int, end: int) -> bytes:
        """Answer a ResendRequest for ``begin .. end`` (0 = up to our last): the kept
        messages again (PossDupFlag=Y, OrigSendingTime), and a SequenceReset-GapFill over
        each run of the others (administrative messages are never resent)."""
        last = self.store.next_sender - 1
        end = last if end <= 0 or end > last else end
        if begin < 1 or begin > end:
            return b""
        out = bytearray()
        cursor = begin
        for seq in sorted(k for k in self._sent if begin <= k <= end):
            if seq > cursor:
                out += self._gap_fill(cursor, seq)
            out += self._possible_duplicate(seq, *self._sent[seq])
            self.resent += 1
            cursor = seq + 1
        if cursor <= end:
            out += self._gap_fill(cursor, end + 1)
        return bytes(out)

    def _queue(self, data: bytes) -> None:
        self._out += data

    def queue(self, data: bytes) -> None:
        """Add bytes made by an explicit call to ``data_to_send()``'s output, after the
        automatic answers already queued (so the order is the sequence order)."""
        self._out += data

    def data_to_send(self) -> bytes:
        """Automatic answers queued since the last call (may be empty)."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def logon(self) -> bytes:
        """(Initiator) our Logon; ResetSeqNumFlag when ``reset_on_logon``."""
        if self.role != "initiator" or self.state != State.CONNECTED:
            raise RuntimeError(f"logon() in state {self.state}")
        if self.reset_on_logon:
            self.store.reset()
        self.reader.expected_seq = self.store.next_target
        self._logon_sent_seq = self.store.next_sender
        m = self.new_message(MsgType.LOGON)
        msg.logon_body(
            m,
            self.heartbeat_s,
            reset=self.reset_on_logon,
            username=self._username,
            password=self._password,
            begin_string=self.header.begin_string,
        )
        self.state = State.LOGON_SENT
        return self._encode(m)

    def accept_logon(
        self, store: MemoryStore | None = None, kept: dict[int, tuple[bytes, int]] | None = None
    ) -> bytes:
        """(Acceptor) answer the pending Logon; ``store`` holds this counterparty's
        sequence numbers and ``kept`` the messages kept for its ResendRequests (both
        kept by the acceptor between connections: a message numbered on a connection
        that died is resent on the next)."""
        req = self._logon
        if self.role != "acceptor" or self.state != State.LOGON_RECEIVED or req is None:
            raise RuntimeError(f"accept_logon() in state {self.state}")
        if store is not None:
            self.store = store
        if kept is not None:
            self._sent = kept
        if req.reset:
            self.store.reset()
            self._sent.clear()
        expected = self.store.next_target
        # every message we make writes the inbound number back to the store: it must be
        # the stored one, or refusing this Logon would rewrite the counterparty's numbers
        self.reader.expected_seq = expected
        seq = self._logon_seq
        if seq < expected and not req.reset:
            return self.reject_logon(f"MsgSeqNum too low, expecting {expected} but received {seq}")
        m = self.new_message(MsgType.LOGON)
        msg.logon_body(m, self.heartbeat_s, reset=req.reset, begin_string=self.header.begin_string)
        data = self._encode(m)
        self.state = State.ACTIVE
        self.reader.fast = self.market_data is not None
        self._events.append(LoggedOn(self.heartbeat_s, req.reset))
        if seq > expected:
            self._start_recovery(expected, seq, None)
            data += self.data_to_send()
        else:
            self._set_expected(seq + 1)
        return data

    def reject_logon(self, text: str) -> bytes:
        """(Acceptor) refuse the pending Logon with a Logout carrying ``text``."""
        if self.role != "acceptor" or self.state != State.LOGON_RECEIVED:
            raise RuntimeError(f"reject_logon() in state {self.state}")
        m = self.new_message(MsgType.LOGOUT)
        m.append_pair(Tag.TEXT, text)
        self.state = State.CLOSED
        return self._encode(m)

    def market_data_request(
        self,
        req_id: str,
        symbol: str,
        *,
        subscribe: bool = True,
        depth: int = 0,
        entry_types: Sequence[str] = ("0", "1", "2"),
    ) -> bytes:
        """MarketDataRequest (35=V) for ``symbol``: snapshot + incremental updates, or
        (``subscribe=False``) disable the request ``req_id``."""
        self._require_active("market_data_request()")
        m = self.new_message(MsgType.MARKET_DATA_REQUEST)
        msg.market_data_request_body(
            m, req_id, symbol, subscribe=subscribe, depth=depth, entry_types=entry_types
        )
        return self.encode_app(m)

    def test_request(self) -> bytes:
        """A TestRequest (35=1) now (the hub's probe of a quiet link)."""
        self._require_active("test_request()")
        return self._test_request()

    def _test_request(self) -> bytes:
        self._test_req_count += 1
        self._test_req_id = f"TEST-{self._test_req_count}"
        self._test_req_sent = self._now()
        m = self.new_message(MsgType.TEST_REQUEST)
        m.append_pair(Tag.TEST_REQ_ID, self._test_req_id)
        return self._encode(m)

    def heartbeat(self, test_req_id: str = "") -> bytes:
        """A Heartbeat (35=0), answering ``test_req_id`` when given."""
        m = self.new_message(MsgType.HEARTBEAT)
        if test_req_id:
            m.append_pair(Tag.TEST_REQ_ID, test_req_id)
        return self._encode(m)

    def logout(self, text: str = "") -> bytes:
        """Start a clean close: a Logout (35=5); the answer arrives as ``LoggedOut``."""
        if self.state in (State.CLOSED, State.FAILED, State.LOGOUT_SENT):
            return b""
        m = self.new_message(MsgType.LOGOUT)
        if text:
            m.append_pair(Tag.TEXT, text)
        self.state = State.LOGOUT_SENT
        return self._encode(m)

    def _require_active(self, what: str) -> None:
        if self.state != State.ACTIVE:
            raise RuntimeError(f"{what} needs an active session (state {self.state})")

    def _resend_request(self, begin: int, end: int) -> bytes:
        m = self.new_message(MsgType.RESEND_REQUEST)
        m.append_pair(Tag.BEGIN_SEQ_NO, begin)
        m.append_pair(Tag.END_SEQ_NO, end)
        return self._encode(m)

    def _gap_fill(self, begin: int, new_seq: int) -> bytes:
        """SequenceReset-GapFill over ``begin .. new_seq-1``: sent with MsgSeqNum
        ``begin`` and PossDupFlag, without consuming a sequence number."""
        now = self._wall_ns()
        m = msg.new_message(
            self.header,
            MsgType.SEQUENCE_RESET,
            begin,
            now,
            poss_dup=True,
            orig_sending_time_ns=now,
        )
        m.append_pair(Tag.GAP_FILL_FLAG, "Y")
        m.append_pair(Tag.NEW_SEQ_NO, new_seq)
        return self._encode(m)

    def _reject(self, frame: Frame, ref_tag: int, reason: str, text: str) -> None:
        m = self.new_message(MsgType.REJECT)
        m.append_pair(Tag.REF_SEQ_NUM, frame.seq)
        if ref_tag:
            m.append_pair(Tag.REF_TAG_ID, ref_tag)
        m.append_pair(Tag.REF_MSG_TYPE, frame.msg_type)
        m.append_pair(Tag.SESSION_REJECT_REASON, reason)
        m.append_pair(Tag.TEXT, text)
        self._queue(self._encode(m))

    # -- inbound -----------------------------------------------------------------------
    def receive_data(self, data: bytes, ts_recv: int = 0) -> None:
        """Bytes from the transport; ``b""`` means the peer closed the stream.

        ``ts_recv`` (wall-clock ns of the read) stamps the ticks decoded from them.
        """
        if not data:
            self._eof = True
            return
        self._last_recv = self._now()
        self._test_req_id = ""  # any bytes prove the peer alive
        self.reader.feed(data, ts_recv or self._wall_ns())

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA``. In-sequence market data is published to
        the sink on the way and never returned."""
        events = self._events
        while not events:
            try:
                frame = self.reader.next_frame()
            except FixDecodeError as exc:
                return Malformed(str(exc))
            if frame is None:
                if self._eof and not self._closed_reported:
                    self._closed_reported = True
                    if self.state not in (State.CLOSED, State.FAILED):
                        self.state = State.CLOSED
                    return ConnectionClosed()
                return NEED_DATA
            self.messages_received += 1
            try:
                self._handle(frame)
            except FixDecodeError as exc:
                return Malformed(str(exc))
        return events.popleft()

    def _gap(self, expected: int, received: int) -> None:
        self.gaps += 1
        self._events.append(SequenceGap(expected, received))

    # -- gap recovery ------------------------------------------------------------------
    @property
    def recovering(self) -> bool:
        """A gap is open: messages above it are held until the resend fills it."""
        return self.reader.expected_seq <= self._resend_until

    @property
    def held(self) -> int:
        """Inbound messages held above the open gap."""
        return len(self._held)

    def _resend_timeout(self) -> float:
        return max(RESEND_TIMEOUT_MIN_S, 2.0 * self.heartbeat_s)

    def _start_recovery(self, expected: int, seq: int, f: Frame | None) -> None:
        """``seq`` arrived where ``expected`` was due: ask for ``expected .. seq-1`` and
        hold what comes above the gap until the resend fills it (market data applied
        out of order would corrupt the books; applied late it is only late)."""
        self._gap(expected, seq)
        self._queue(self._resend_request(expected, seq - 1))
        self._resend_until = max(self._resend_until, seq - 1)
        self._resend_deadline = self._now() + self._resend_timeout()
        self.reader.fast = False  # every message is judged here until the gap closes
        self._hold(seq, f)

    def _hold(self, seq: int, f: Frame | None) -> None:
        if seq in self._held:
            self.duplicates_ignored += 1
            return
        if len(self._held) >= MAX_HELD:
            self._give_up(f"{MAX_HELD} messages held above the gap without the resend")
            self._handle_after_give_up(seq, f)
            return
        self._held[seq] = f

    def _handle_after_give_up(self, seq: int, f: Frame | None) -> None:
        expected = self.reader.expected_seq
        if seq == expected:
            self._set_expected(seq + 1)
            if f is not None:
                self._dispatch(f)
        elif seq > expected:
            self._held[seq] = f

    def _give_up(self, why: str) -> None:
        """The gap will not be filled: report it, skip to the first held message, and
        process the held ones in order."""
        start = self.reader.expected_seq
        first = min(self._held) if self._held else self._resend_until + 1
        end = max(start, first - 1)
        self._resend_until = 0
        self._gap_filled = None
        self._events.append(GapUnrecovered(start, end, why))
        self._set_expected(first)
        self._after_progress()

    def _after_progress(self) -> None:
        """The expected number moved: process the held messages now in sequence, report
        a gap-filled range once the gap closes, and open a new gap if one remains."""
        held = self._held
        while held:
            expected = self.reader.expected_seq
            if expected in held:
                f = held.pop(expected)
                self._set_expected(expected + 1)
                if f is not None:
                    self._dispatch(f)
                    if self.state in (State.CLOSED, State.FAILED):
                        held.clear()
                        break
                continue
            for seq in [k for k in held if k < expected]:
                del held[seq]  # gap-filled over: those numbers are settled
            if not held or self.reader.expected_seq <= self._resend_until:
                break
            # past the requested range, another hole below the held messages
            self._report_gap_filled()
            first = min(held)
            self._gap(self.reader.expected_seq, first)
            self._queue(self._resend_request(self.reader.expected_seq, first - 1))
            self._resend_until = first - 1
            self._resend_deadline = self._now() + self._resend_timeout()
            return
        if self.reader.expected_seq > self._resend_until:
            self._report_gap_filled()
            if not held:
                self._resend_until = 0
                self.reader.fast = self.market_data is not None and self.state == State.ACTIVE

    def _report_gap_filled(self) -> None:
        filled, self._gap_filled = self._gap_filled, None
        if filled is not None:
            self._events.append(
                GapUnrecovered(
                    filled[0],
                    filled[1],
                    "the counterparty gap-filled them instead of resending",
                )
            )

    def _fail(
        self, reason: str, logout: bool = True, sequence: tuple[int, int] | None = None
    ) -> None:
        if logout and self.state in (State.ACTIVE, State.LOGON_SENT, State.LOGON_RECEIVED):
            m = self.new_message(MsgType.LOGOUT)
            m.append_pair(Tag.TEXT, reason)
            self._queue(self._encode(m))
        self.state = State.FAILED
        self.reader.fast = False
        self._events.append(SessionFailed(reason, sequence))

    def _handle(self, f: Frame) -> None:
        state = self.state
        if state in (State.CLOSED, State.FAILED):
            return  # nothing more is processed after the end
        if state == State.LOGON_SENT:
            self._on_logon_reply(f)
            return
        if state == State.AWAITING_LOGON:
            self._on_logon_request(f)
            return
        if state in (State.CONNECTED, State.LOGON_RECEIVED):
            self._fail(f"35={f.msg_type} before the Logon exchange completed", logout=False)
            return
        t = f.msg_type
        if not f.comp_ids_ok:
            got = f"49={f.text(Tag.SENDER_COMP_ID)} 56={f.text(Tag.TARGET_COMP_ID)}"
            self._reject(f, Tag.SENDER_COMP_ID, "9", f"CompID problem: {got}")
            self._fail(
                f"35={t} seq {f.seq} carries the wrong CompIDs ({got}); expected "
                f"49={self.header.target_comp_id} 56={self.header.sender_comp_id}"
            )
            return
        if t == MsgType.SEQUENCE_RESET and f.get(Tag.GAP_FILL_FLAG) != b"Y":
            self._sequence_reset(f)
            if self._held:
                self._after_progress()
            return
        seq = f.seq
        expected = self.reader.expected_seq
        if seq == 0:
            self._reject(f, Tag.MSG_SEQ_NUM, "1", "MsgSeqNum (34) missing")
            self._events.append(Malformed(f"35={t} without MsgSeqNum (34)"))
            return
        if seq < expected:
            if f.poss_dup or seq in self._held:
                self.duplicates_ignored += 1
                return
            if t == MsgType.LOGOUT:
                self._on_logout(f)
                return
            self._fail(
                f"MsgSeqNum too low, expecting {expected} but received {seq}",
                sequence=(expected, seq),
            )
            return
        if seq > expected:
            if t == MsgType.LOGOUT:
                # the counterparty is leaving: nothing will be resent
                self._set_expected(seq + 1)
                self._dispatch(f)
                return
            held: Frame | None = f
            if t in (MsgType.RESEND_REQUEST, MsgType.TEST_REQUEST):
                # answered at once even above a gap (as QuickFIX does): two sessions
                # that each hold the other's ResendRequest would wait for ever
                self._dispatch(f)
                held = None  # its number still counts when the gap closes
            if expected <= self._resend_until:
                self._hold(seq, held)  # a resend is under way
            else:
                self._start_recovery(expected, seq, held)
            return
        self._set_expected(seq + 1)
        if f.poss_dup and self._resend_until >= seq:
            self.recovered += 1
        self._dispatch(f)
        if self._held or self._gap_filled:
            self._after_progress()

    def _dispatch(self, f: Frame) -> None:
        """Act on one message whose sequence number was accepted."""
        t = f.msg_type
        if t in ("W", "X"):
            md = self.market_data
            if md is not None:
                md.apply(f, self.reader.ts_recv)
            else:
                self._events.append(AppMessage(f))
        elif t == MsgType.HEARTBEAT:
            pass  # liveness only: receive_data() already noted it
        elif t == MsgType.TEST_REQUEST:
            self._queue(self.heartbeat(_text(f.get(Tag.TEST_REQ_ID))))
        elif t == MsgType.RESEND_REQUEST:
            begin = _int(f.get(Tag.BEGIN_SEQ_NO))
            if len(self.resend_requests) < 1000:
                self.resend_requests.append((begin, _int(f.get(Tag.END_SEQ_NO))))
            self._queue(self._resend(begin, _int(f.get(Tag.END_SEQ_NO))))
        elif t == MsgType.SEQUENCE_RESET:  # gap fill (reset mode was handled above)
            new = _int(f.get(Tag.NEW_SEQ_NO))
            if new > f.seq and f.seq <= self._resend_until:
                # numbers of the gap (this one included) that will never come: whatever
                # they were (market data, or only heartbeats), we cannot tell
                top = min(new - 1, self._resend_until)
                start = self._gap_filled[0] if self._gap_filled else f.seq
                self._gap_filled = (start, top)
            if new > self.reader.expected_seq:
                self._set_expected(new)
        elif t == MsgType.REJECT:
            self._events.append(
                SessionReject(
                    _int(f.get(Tag.REF_SEQ_NUM)),
                    _int(f.get(Tag.REF_TAG_ID)),
                    f.text(Tag.REF_MSG_TYPE),
                    msg.describe_reason(
                        msg.SESSION_REJECT_REASONS, f.text(Tag.SESSION_REJECT_REASON)
                    ),
                    f.text(Tag.TEXT),
                )
            )
        elif t == MsgType.BUSINESS_REJECT:
            self._events.append(
                BusinessReject(
                    _int(f.get(Tag.REF_SEQ_NUM)),
                    f.text(Tag.REF_MSG_TYPE),
                    f.text(Tag.BUSINESS_REJECT_REF_ID),
                    msg.describe_reason(
                        msg.BUSINESS_REJECT_REASONS, f.text(Tag.BUSINESS_REJECT_REASON)
                    ),
                    f.text(Tag.TEXT),
                )
            )
        elif t == MsgType.MARKET_DATA_REQUEST_REJECT:
            self._events.append(
                MarketDataRejected(
                    f.text(Tag.MD_REQ_ID),
                    msg.describe_reason(msg.MD_REJECT_REASONS, f.text(Tag.MD_REQ_REJ_REASON)),
                    f.text(Tag.TEXT),
                )
            )
        elif t == MsgType.LOGOUT:
            self._on_logout(f)
        elif t == MsgType.LOGON:
            self._reject(f, Tag.MSG_TYPE, "99", "already logged on")
        else:
            self._events.append(AppMessage(f))

    def _sequence_reset(self, f: Frame) -> None:
        new = _int(f.get(Tag.NEW_SEQ_NO))
        expected = self.reader.expected_seq
        if new > expected:
            self._set_expected(new)
        elif new < expected:
            self._reject(
                f,
                Tag.NEW_SEQ_NO,
                "5",
                f"NewSeqNo {new} is below the expected MsgSeqNum {expected}",
            )

    def _on_logout(self, f: Frame) -> None:
        text = f.text(Tag.TEXT)
        if self.state == State.LOGOUT_SENT:
            self.state = State.CLOSED
            self._events.append(LoggedOut(text, by_peer=False))
            return
        m = self.new_message(MsgType.LOGOUT)
        self._queue(self._encode(m))
        self.state = State.CLOSED
        self.reader.fast = False
        self._events.append(LoggedOut(text, by_peer=True))

    def _on_logon_reply(self, f: Frame) -> None:
        t = f.msg_type
        h = self.header
        if t == MsgType.LOGOUT:
            self.state = State.CLOSED
            why = f.text(Tag.TEXT) or "no reason given"
            self._events.append(
                LogonRejected(
                    f"the counterparty answered our Logon with a Logout: {why}",
                    _sequence_complaint(why, self._logon_sent_seq),
                )
            )
            return
        if t == MsgType.REJECT:
            reason = msg.describe_reason(
                msg.SESSION_REJECT_REASONS, f.text(Tag.SESSION_REJECT_REASON)
            )
            self.state = State.FAILED
            text = f.text(Tag.TEXT)
            self._events.append(
                LogonRejected(
                    f"our Logon was rejected: {reason}: {text}",
                    _sequence_complaint(text, self._logon_sent_seq),
                )
            )
            return
        if t != MsgType.LOGON:
            self.state = State.FAILED
            self._events.append(LogonRejected(f"expected a Logon (35=A) in reply, got 35={t}"))
            return
        if not f.comp_ids_ok:
            got = f"49={f.text(Tag.SENDER_COMP_ID)} 56={f.text(Tag.TARGET_COMP_ID)}"
            self._queue(self.logout("wrong CompIDs"))
            self.state = State.FAILED
            self._events.append(
                LogonRejected(
                    f"the Logon reply carries {got}, expected "
                    f"49={h.target_comp_id} 56={h.sender_comp_id}"
                )
            )
            return
        reset = f.get(Tag.RESET_SEQ_NUM_FLAG) == b"Y"
        if reset and not self.reset_on_logon:
            # the counterparty restarted the session on its own: both sides begin at 1,
            # and our Logon counted as our number 1
            self.store.next_sender = 2
            self.reader.expected_seq = 1
        seq = f.seq
        expected = self.reader.expected_seq
        if seq < expected:
            self._queue(self.logout(f"MsgSeqNum too low, expecting {expected} but received {seq}"))
            self.state = State.FAILED
            self._events.append(
                LogonRejected(
                    f"the Logon reply has MsgSeqNum {seq}, below the {expected} expected "
                    f"from the stored session ({self.store.describe()})",
                    (expected, seq),
                )
            )
            return
        hb = _int(f.get(Tag.HEART_BT_INT), self.heartbeat_s)
        if hb > 0:
            self.heartbeat_s = hb
        self.state = State.ACTIVE
        self.reader.fast = self.market_data is not None
        self._events.append(LoggedOn(self.heartbeat_s, reset))
        if seq > expected:
            self._start_recovery(expected, seq, None)
        else:
            self._set_expected(seq + 1)

    def _on_logon_request(self, f: Frame) -> None:
        if f.msg_type != MsgType.LOGON:
            self._fail(f"the first message must be a Logon, got 35={f.msg_type}", logout=False)
            return
        sender = f.text(Tag.SENDER_COMP_ID)
        target = f.text(Tag.TARGET_COMP_ID)
        hb = _int(f.get(Tag.HEART_BT_INT))
        user = f.get(Tag.USERNAME)
        password = f.get(Tag.PASSWORD)
        appl_ver = f.get(Tag.DEFAULT_APPL_VER_ID)
        req = LogonRequested(
            sender,
            target,
            hb,
            f.get(Tag.RESET_SEQ_NUM_FLAG) == b"Y",
            None if user is None else user.decode("latin-1"),
            None if password is None else password.decode("latin-1"),
            None if appl_ver is None else appl_ver.decode("latin-1"),
        )
        # from now on our header answers the counterparty
        self.header = Header(self.header.begin_string, self.header.sender_comp_id, sender)
        self._expect_comp_ids()
        if hb > 0:
            self.heartbeat_s = hb
        self._logon = req
        self._logon_seq = f.seq
        self.state = State.LOGON_RECEIVED
        self._events.append(req)

    # -- timers ----------------------------------------------------------------------
    def next_timeout(self) -> float:
        """Seconds until ``tick()`` has something to do (only while active)."""
        if self.state not in (State.ACTIVE, State.LOGOUT_SENT):
            return 1.0
        now = self._now()
        hb = float(self.heartbeat_s)
        due = self._last_sent + hb - now
        if self._test_req_id:
            due = min(due, self._test_req_sent + hb * TIMEOUT_FACTOR - now)
        else:
            due = min(due, self._last_recv + hb * TEST_REQUEST_FACTOR - now)
        if self.recovering:
            due = min(due, self._resend_deadline - now)
        return max(0.01, due)

    def tick(self) -> None:
        """Timer work: a Heartbeat when we said nothing for a heartbeat interval, a
        TestRequest when the peer said nothing for 1.2 intervals, ``SessionFailed``
        when that goes unanswered for another interval."""
        if self.state != State.ACTIVE:
            return
        now = self._now()
        hb = float(self.heartbeat_s)
        if self.recovering and now >= self._resend_deadline:
            self._give_up(f"no resend within {self._resend_timeout():g}s")
        if self._test_req_id:
            if now - self._test_req_sent >= hb * TIMEOUT_FACTOR:
                self._test_req_id = ""
                self._fail(
                    f"no answer to TestRequest within {hb:g}s (heartbeat interval); "
                    "the counterparty or the link is gone",
                    logout=False,
                )
                return
        elif now - self._last_recv >= hb * TEST_REQUEST_FACTOR:
            self._queue(self._test_request())
        if now - self._last_sent >= hb:
            self._queue(self.heartbeat())


__all__ = [
    "NEED_DATA",
    "AppMessage",
    "BusinessReject",
    "ConnectionClosed",
    "Event",
    "FixSession",
    "GapUnrecovered",
    "LoggedOn",
    "LoggedOut",
    "LogonRejected",
    "LogonRequested",
    "Malformed",
    "MarketDataRejected",
    "NeedData",
    "SequenceGap",
    "SessionFailed",
    "SessionReject",
    "State",
]
