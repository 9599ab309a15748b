"""Zero-copy FIX tag scanner: receive buffer -> checked messages -> fields.

Compiled with mypyc when the package is built normally (``setup.py``); the same
source runs as pure Python. Nothing here slices the whole buffer per field:
messages are located by index (``bytes.find`` to resynchronise after garbage,
short compiled loops for field ends, where a method call would cost more than
the scan), framing jumps straight from BodyLength (9) to CheckSum (10), and a ``Frame`` is only a
view (buffer + offsets) on the bytes it came in.

Rules (FIX 4.x session layer, "garbled messages"):

* a message starts with ``8=``; anything else is skipped up to the next
  ``8=FIX`` (every BeginString starts so) and reported once;
* ``9=`` must be the second field and hold at most 7 digits; BodyLength must
  land exactly on ``10=nnn<SOH>``, and the CheckSum (sum of every byte before
  ``10=``, modulo 256) must match, else the message is dropped (the FIX spec:
  as if never received; the sequence gap then shows it);
* ``35=`` must be the third field; BodyLength above ``max_message`` is refused
  without waiting for the bytes.

The cost of a feed is linear in its size: the unconsumed tail kept between
feeds is at most one partial message, itself bounded by ``max_message``.
"""

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from mypy_extensions import i64

from hub_plugin_fix.errors import GarbledMessage, MalformedMessage, MessageTooLarge

if TYPE_CHECKING:
    from hub_plugin_fix.marketdata import MarketDataDecoder

SOH: Final = b"\x01"
_SOH_INT: Final = 1
_EQ_INT: Final = 61
_BEGIN: Final = b"8="
_RESYNC: Final = b"8=FIX"
"""Where framing resumes after garbage: every BeginString (FIX.4.x, FIXT.1.1) starts so."""
_BODY_LENGTH: Final = b"9="
_CHECKSUM: Final = b"10="
_MSG_TYPE: Final = b"35="
_MAX_BEGIN_LEN: Final = 16
"""Longest BeginString value accepted (``FIXT.1.1`` is 8)."""
_MAX_LENGTH_DIGITS: Final = 7
_MAX_TAG_DIGITS: Final = 9
_TRAILER_LEN: Final = 7
"""``10=nnn<SOH>``."""
_ADLER_CHUNK: Final = 256
"""zlib.adler32 sums bytes modulo 65521; 256 bytes of 255 stay below it, so each
chunk's sum is exact and the total modulo 256 is the FIX CheckSum."""

DEFAULT_MAX_MESSAGE: Final = 1 << 20
"""Default bound on BodyLength (1 MiB: a deep 35=W snapshot fits many times)."""

TAG_MSG_SEQ_NUM: Final = 34
TAG_POSS_DUP: Final = 43
TAG_SENDER: Final = 49
TAG_TARGET: Final = 56
TAG_SENDING_TIME: Final = 52

# Standard-header tags that may follow 35 (FIX 4.2/4.4/FIXT.1.1). The header scan
# stops at the first tag outside this set: that is where the body starts.
_HEADER_TAGS: Final = frozenset(
    {
        34, 43, 49, 50, 52, 56, 57, 90, 91, 97, 115, 116, 122, 128, 129, 142, 143,
        144, 145, 212, 213, 347, 369, 627, 628, 629, 630, 1128, 1129, 1156,
    }
)  # fmt: skip

_NS_PER_DAY: Final[i64] = 86_400_000_000_000


def checksum(data: bytes, start: int, end: int) -> int:
    """FIX CheckSum of ``data[start:end]``: the byte sum modulo 256, without a copy."""
    return checksum_view(memoryview(data), start, end)


def checksum_view(view: memoryview, start: int, end: int) -> int:
    """``checksum`` over a memoryview the caller keeps (one per receive buffer)."""
    total = 0
    i = start
    while i < end:
        j = min(i + _ADLER_CHUNK, end)
        total += zlib.adler32(view[i:j], 0) & 0xFFFF
        i = j
    return total & 0xFF


def days_from_civil(y: i64, m: i64, d: i64) -> i64:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    era: i64 = (y if y >= 0 else y - 399) // 400
    yoe: i64 = y - era * 400
    mp: i64 = m - 3 if m > 2 else m + 9
    doy: i64 = (153 * mp + 2) // 5 + d - 1
    doe: i64 = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _digits(buf: bytes, s: int, e: int) -> i64:
    """Decimal digits ``buf[s:e]`` as an int; -1 if empty, longer than 18 digits
    or not all digits."""
    if s >= e or e - s > 18:
        return -1
    v: i64 = 0
    i = s
    while i < e:
        c = buf[i]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
        i += 1
    return v


def parse_date(buf: bytes, s: int) -> i64:
    """``YYYYMMDD`` at ``buf[s:s+8]`` -> ns since the epoch of that midnight; -1 if bad."""
    y = _digits(buf, s, s + 4)
    m = _digits(buf, s + 4, s + 6)
    d = _digits(buf, s + 6, s + 8)
    if y < 0 or m < 1 or m > 12 or d < 1 or d > 31:
        return -1
    return days_from_civil(y, m, d) * _NS_PER_DAY


def parse_time(buf: bytes, s: int, e: int) -> i64:
    """``HH:MM:SS[.f{1,9}]`` in ``buf[s:e]`` -> ns since midnight; -1 if bad."""
    if e - s < 8 or buf[s + 2] != 58 or buf[s + 5] != 58:  # ':'
        return -1
    hh = _digits(buf, s, s + 2)
    mm = _digits(buf, s + 3, s + 5)
    ss = _digits(buf, s + 6, s + 8)
    if hh < 0 or hh > 23 or mm < 0 or mm > 59 or ss < 0 or ss > 60:
        return -1
    ns: i64 = ((hh * 60 + mm) * 60 + ss) * 1_000_000_000
    if e > s + 8:
        if buf[s + 8] != 46 or e - s - 9 > 9:  # '.' then 1..9 digits
            return -1
        frac = _digits(buf, s + 9, e)
        if frac < 0:
            return -1
        k = e - s - 9
        while k < 9:  # a loop: a constant tuple indexed by a variable is boxed by mypyc
            frac *= 10
            k += 1
        ns += frac
    return ns


def parse_timestamp(buf: bytes, s: int, e: int) -> i64:
    """UTCTimestamp ``YYYYMMDD-HH:MM:SS[.fff...]`` in ``buf[s:e]`` -> ns; 0 if bad."""
    if e - s < 17 or buf[s + 8] != 45:  # '-'
        return 0
    day = parse_date(buf, s)
    tod = parse_time(buf, s + 9, e)
    if day < 0 or tod < 0:
        return 0
    return day + tod


def read_tag(buf: bytes, p: int, end: int) -> tuple[int, int]:
    """The tag number of the field at ``p`` and the index where its value starts.

    Raises ``MalformedMessage`` unless ``1..9`` digits and ``=`` come first.
    """
    tag = 0
    i = p
    while i < end:
        c = buf[i]
        if c == _EQ_INT:
            if i == p:
                break
            return tag, i + 1
        if c < 48 or c > 57 or i - p >= _MAX_TAG_DIGITS:
            break
        tag = tag * 10 + (c - 48)
        i += 1
    raise MalformedMessage(f"bad field at byte {p}: not <tag>=<value>")


def find_soh(buf: bytes, i: int, end: int) -> int:
    """Index of the first SOH in ``buf[i:end]``, or -1.

    A plain loop: compiled, it beats a ``bytes.find`` method call on values a few
    bytes long (the call and its boxed arguments cost more than the scan).
    """
    while i < end:
        if buf[i] == _SOH_INT:
            return i
        i += 1
    return -1


def is_raw_length_tag(tag: int) -> bool:
    """Tags whose value is the byte length of the next field, a data field that may
    hold SOH (RawDataLength 95, SecureDataLen 90, SignatureLength 93, XmlDataLen 212,
    the Encoded*Len tags 348-364, 445, 618, 621)."""
    if tag < 100:
        return tag == 90 or tag == 93 or tag == 95
    if tag < 348:
        return tag == 212
    if tag <= 364:
        return tag % 2 == 0
    return tag == 445 or tag == 618 or tag == 621


def data_end(buf: bytes, vs: int, end: int, length: int) -> int:
    """End of a data field of ``length`` bytes starting at ``vs`` (it must end in SOH)."""
    ve = vs + length
    if length < 0 or ve >= end or buf[ve] != _SOH_INT:
        raise MalformedMessage(f"a data field of {length} bytes does not end in SOH")
    return ve


def match_at(buf: bytes, i: int, lit: bytes) -> bool:
    """``buf.startswith(lit, i)`` as a compiled loop (no method call, no boxing)."""
    n = len(lit)
    if i < 0 or i + n > len(buf):
        return False
    k = 0
    while k < n:
        if buf[i + k] != lit[k]:
            return False
        k += 1
    return True


@final
class Frame:
    """One checked FIX message inside a receive buffer: a view, never a copy.

    ``buf[start:]`` begins with ``8=``; ``buf[body:end]`` are the fields after the
    standard header (``end`` is where ``10=`` starts). Header values the session
    needs on every message are pre-parsed.
    """

    buf: Final[bytes]
    start: Final[int]
    header: Final[int]
    """Index of the first field after ``35=``."""
    body: int
    """Index of the first field after the standard header."""
    end: Final[int]
    msg_type: str
    seq: int
    """MsgSeqNum (34), 0 when missing or not a number."""
    poss_dup: bool
    """PossDupFlag (43) is ``Y``."""
    sending_time: int
    """SendingTime (52) in ns since the epoch, 0 when missing or unparsable."""
    comp_ids_ok: bool
    """SenderCompID/TargetCompID match what the reader expects (always True when the
    reader expects none)."""

    def __init__(self, buf: bytes, start: int, header: int, end: int, msg_type: str) -> None:
        self.buf = buf
        self.start = start
        self.header = header
        self.body = header
        self.end = end
        self.msg_type = msg_type
        self.seq = 0
        self.poss_dup = False
        self.sending_time = 0
        self.comp_ids_ok = True

    def raw(self) -> bytes:
        """The whole message, ``8=`` through the CheckSum's SOH (a copy)."""
        return self.buf[self.start : self.end + _TRAILER_LEN]

    def fields(self) -> list[tuple[int, bytes]]:
        """Every field after ``35=`` (header and body) as ``(tag, value)``, in order."""
        out: list[tuple[int, bytes]] = []
        buf = self.buf
        end = self.end
        p = self.header
        raw_len = -1
        while p < end:
            tag, vs = read_tag(buf, p, end)
            ve = find_soh(buf, vs, end) if raw_len < 0 else data_end(buf, vs, end, raw_len)
            out.append((tag, buf[vs:ve]))
            raw_len = _digits(buf, vs, ve) if is_raw_length_tag(tag) else -1
            p = ve + 1
        return out

    def get(self, tag: int) -> bytes | None:
        """The first value of ``tag`` (header or body), or None."""
        buf = self.buf
        end = self.end
        p = self.header
        raw_len = -1
        while p < end:
            t, vs = read_tag(buf, p, end)
            ve = find_soh(buf, vs, end) if raw_len < 0 else data_end(buf, vs, end, raw_len)
            if t == tag:
                return buf[vs:ve]
            raw_len = _digits(buf, vs, ve) if is_raw_length_tag(t) else -1
            p = ve + 1
        return None

    def text(self, tag: int) -> str:
        """``get(tag)`` decoded leniently for messages and logs; "" when missing."""
        value = self.get(tag)
        return "" if value is None else value.decode("latin-1")

    def __repr__(self) -> str:
        shown = self.raw().replace(SOH, b"|").decode("latin-1")
        if len(shown) > 300:
            shown = shown[:300] + "..."
        return f"Frame({shown})"


@final
class FixReader:
    """Frames FIX messages out of a byte stream, with an in-sequence fast path.

    ``feed(data, ts_recv)`` then ``next_frame()`` until it returns None. When
    ``fast`` is on, market data (35=W/X) carrying exactly ``expected_seq``, no
    PossDupFlag and the expected CompIDs goes straight to ``market_data`` (which
    calls the sink) and ``expected_seq`` advances; every other message is
    returned for the session to judge. A broken message raises a
    ``FixDecodeError`` after the reader has moved past it.
    """

    expected_seq: int
    fast: bool
    max_message: int
    market_data: "MarketDataDecoder | None"
    ts_recv: int
    bytes_skipped: int
    messages: int

    def __init__(
        self,
        market_data: "MarketDataDecoder | None" = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
        begin_string: bytes = b"",
    ) -> None:
        self.market_data = market_data
        self.max_message = max_message
        self.expected_seq = 1
        self.fast = False
        self.ts_recv = 0
        self.bytes_skipped = 0
        self.messages = 0
        self._buf = b""
        self._view = memoryview(b"")
        self._pos = 0
        self._begin = begin_string
        self._sender = b""
        self._target = b""

    def expect_comp_ids(self, sender: bytes, target: bytes) -> None:
        """Inbound SenderCompID/TargetCompID to expect (the counterparty's view:
        its SenderCompID is our TargetCompID)."""
        self._sender = sender
        self._target = target

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (at most one partial message)."""
        return len(self._buf) - self._pos

    def reset(self) -> None:
        """Forget buffered bytes (a new connection)."""
        self._buf = b""
        self._view = memoryview(b"")
        self._pos = 0

    def feed(self, data: bytes, ts_recv: int) -> None:
        """Add received bytes. Only the unconsumed tail (one partial message at
        most) is copied; a buffer fully consumed is replaced, not grown."""
        self.ts_recv = ts_recv
        if not data:
            return
        pos = self._pos
        buf = self._buf
        if pos >= len(buf):
            self._buf = bytes(data)
        else:
            self._buf = buf[pos:] + data
        self._view = memoryview(self._buf)
        self._pos = 0

    def next_frame(self) -> Frame | None:
        """The next message the session must see, or None when more bytes are needed.

        In-sequence market data is decoded here when ``fast`` is on and never
        returned. Raises ``GarbledMessage``/``MessageTooLarge``/``MalformedMessage``
        (after consuming the bad bytes) for the caller to count.
        """
        md = self.market_data
        while True:
            frame = self._frame()
            if frame is None:
                return None
            if (
                self.fast
                and md is not None
                and frame.seq == self.expected_seq
                and not frame.poss_dup
                and frame.comp_ids_ok
            ):
                t = frame.msg_type
                if t == "X" or t == "W":
                    self.expected_seq += 1
                    md.apply(frame, self.ts_recv)
                    continue
            return frame

    # -- framing -----------------------------------------------------------------------
    def _garbage(self, start: int, resync_from: int) -> None:
        """Skip from ``start`` to the next ``8=FIX`` at or after ``resync_from``, or to
        the end, keeping the last bytes that could begin a split ``8=FIX``."""
        buf = self._buf
        n = len(buf)
        j = buf.find(_RESYNC, resync_from)
        if j >= 0:
            self._pos = j
        else:
            self._pos = max(resync_from, n - (len(_RESYNC) - 1))
        self.bytes_skipped += self._pos - start

    def _frame(self) -> Frame | None:
        buf = self._buf
        n = len(buf)
        pos = self._pos
        if pos >= n:
            return None
        if not match_at(buf, pos, _BEGIN):
            self._garbage(pos, pos)
            skipped = self._pos - pos
            if skipped == 0:
                return None  # a few bytes that may begin "8=FIX": wait for more
            raise GarbledMessage(f"skipped {skipped} bytes that are not a FIX message")
        # BeginString
        lim = pos + 2 + _MAX_BEGIN_LEN + 1
        s1 = find_soh(buf, pos + 2, min(lim, n))
        if s1 < 0:
            if n < lim:
                return None
            self._garbage(pos, pos + 1)
            raise GarbledMessage("BeginString (8) too long or not terminated")
        begin = self._begin
        if begin and (s1 - pos - 2 != len(begin) or not match_at(buf, pos + 2, begin)):
            self._garbage(pos, pos + 1)
            got = buf[pos + 2 : s1].decode("latin-1")
            raise GarbledMessage(f"BeginString {got!r}, expected {begin.decode('latin-1')!r}")
        # BodyLength
        p = s1 + 1
        if n < p + 2:
            return None
        if not match_at(buf, p, _BODY_LENGTH):
            self._garbage(pos, pos + 1)
            raise GarbledMessage("BodyLength (9) is not the second field")
        p += 2
        length = 0
        digits = 0
        while True:
            if p >= n:
                return None
            c = buf[p]
            if c == _SOH_INT:
                break
            if c < 48 or c > 57 or digits >= _MAX_LENGTH_DIGITS:
                self._garbage(pos, pos + 1)
                raise GarbledMessage("BodyLength (9) is not a number")
            length = length * 10 + (c - 48)
            digits += 1
            p += 1
        if digits == 0:
            self._garbage(pos, pos + 1)
            raise GarbledMessage("BodyLength (9) is empty")
        if length > self.max_message:
            self._garbage(pos, pos + 1)
            raise MessageTooLarge(
                f"BodyLength {length} is above the bound of {self.max_message} bytes"
            )
        body = p + 1
        end = body + length
        if n < end + _TRAILER_LEN:
            return None
        if (
            length < 5
            or buf[end - 1] != _SOH_INT
            or not match_at(buf, end, _CHECKSUM)
            or buf[end + 6] != _SOH_INT
        ):
            self._garbage(pos, pos + 1)
            raise GarbledMessage(f"BodyLength {length} does not end where CheckSum (10) starts")
        given = _digits(buf, end + 3, end + 6)
        if given < 0 or given != checksum_view(self._view, pos, end):
            self._pos = end + _TRAILER_LEN
            raise GarbledMessage("CheckSum (10) does not match the message")
        self._pos = end + _TRAILER_LEN
        self.messages += 1
        # MsgType must be the third field
        if not match_at(buf, body, _MSG_TYPE):
            raise MalformedMessage("MsgType (35) is not the third field")
        te = find_soh(buf, body + 3, end)
        if te <= body + 3:
            raise MalformedMessage("MsgType (35) is empty")
        if te == body + 4:
            msg_type = chr(buf[body + 3])  # one letter: CPython's cached 1-char strings
        else:
            msg_type = buf[body + 3 : te].decode("latin-1")
        frame = Frame(buf, pos, te + 1, end, msg_type)
        self._header(frame)
        return frame

    def _header(self, f: Frame) -> None:
        """Read the standard-header fields the session needs; set ``f.body``."""
        buf = f.buf
        end = f.end
        p = f.header
        sender = self._sender
        target = self._target
        check = len(sender) > 0
        seen_sender = False
        seen_target = False
        raw_len = -1
        while p < end:
            tag, vs = read_tag(buf, p, end)
            if not (
                tag in (TAG_MSG_SEQ_NUM, TAG_SENDER, TAG_TARGET, TAG_SENDING_TIME)
                or tag in _HEADER_TAGS
            ):
                break
            if raw_len < 0:
                ve = find_soh(buf, vs, end)
            else:
                ve = data_end(buf, vs, end, raw_len)
                raw_len = -1
            if tag == TAG_MSG_SEQ_NUM:
                seq = _digits(buf, vs, ve)
                if seq <= 0:
                    raise MalformedMessage("MsgSeqNum (34) is not a positive number")
                f.seq = seq
            elif tag == TAG_POSS_DUP:
                f.poss_dup = ve == vs + 1 and buf[vs] == 89  # 'Y'
            elif tag == TAG_SENDING_TIME:
                f.sending_time = parse_timestamp(buf, vs, ve)
            elif check and tag == TAG_SENDER:
                seen_sender = ve - vs == len(sender) and match_at(buf, vs, sender)
            elif check and tag == TAG_TARGET:
                seen_target = ve - vs == len(target) and match_at(buf, vs, target)
            elif is_raw_length_tag(tag):
                raw_len = _digits(buf, vs, ve)
            p = ve + 1
        f.body = p
        if check:
            f.comp_ids_ok = seen_sender and seen_target


def scan_messages(
    data: bytes, on_error: Callable[[Exception], object] | None = None
) -> list[Frame]:
    """Every message in ``data`` (a whole stream or capture), skipping broken ones.

    A convenience for tools and tests; a connection uses ``FixReader``.
    """
    reader = FixReader()
    reader.feed(data, 0)
    out: list[Frame] = []
    while True:
        try:
            frame = reader.next_frame()
        except (GarbledMessage, MalformedMessage) as exc:
            if on_error is not None:
                on_error(exc)
            continue
        if frame is None:
            return out
        out.append(frame)
