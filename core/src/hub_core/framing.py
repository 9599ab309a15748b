"""Bounded framing of a byte stream, sans-I/O: lines and length-prefixed frames.

A codec owns a framer: its ``receive_data`` calls ``feed(data)`` (any split of the
stream, one socket read at a time) and its ``next_event`` asks ``next_frame()`` for
the next whole frame, ``NEED_DATA`` when there is none yet. A frame past the
framer's bound raises ``FrameTooLarge`` once, naming its size and the bound; its
bytes are dropped as they arrive (never buffered whole) and the next frame follows.
The framer then holds at most one bounded frame and one read.

Compiled with mypyc: one ``bytes.find`` per line, one slice per frame, no loop over
bytes in Python. A consumed buffer is replaced by the next read without a copy;
only a partial frame is carried over.
"""

from __future__ import annotations

import struct
from typing import Final, Literal, final

from hub_core.errors import DecodeError, FrameTooLarge

DEFAULT_MAX_LINE: Final = 64 * 1024
"""``LineFramer``'s default bound: the longest line, its terminator not counted."""
DEFAULT_MAX_FRAME: Final = 1024 * 1024
"""``LengthPrefixFramer``'s default bound: the longest body, its prefix not counted."""
_CR: Final = 13
_PREFIX_CODES: Final = {1: "B", 2: "H", 4: "I"}


class NeedData:
    """The type of ``NEED_DATA``: annotate ``next_event() -> MyEvent | NeedData``."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()
"""What a sans-I/O codec's ``next_event()`` (or a framer's ``next_frame()``) returns
when it needs more bytes (h11's idiom)."""


class _Framer:
    """What both framers share: the buffer with its unframed tail, and iteration."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0  # the first byte not yet framed

    def _carry(self, data: bytes) -> int:
        """Append ``data`` to the unframed tail; returns how many framed bytes went."""
        gone = self._pos
        if gone >= len(self._buf):
            self._buf = bytes(data)  # the common case: no partial frame to carry over
        else:
            self._buf = self._buf[gone:] + data
        self._pos = 0
        return gone

    def _take(self) -> bytes:
        rest = self._buf[self._pos :]
        self._buf, self._pos = b"", 0
        return rest

    def next_frame(self) -> bytes | NeedData:
        raise NotImplementedError

    @property
    def buffered(self) -> int:
        """Bytes held for the frame not complete yet."""
        return len(self._buf) - self._pos

    def __iter__(self) -> _Framer:
        return self

    def __next__(self) -> bytes:
        """The next frame; ``StopIteration`` at ``NEED_DATA``."""
        frame = self.next_frame()
        if isinstance(frame, NeedData):
            raise StopIteration
        return frame


@final
class LineFramer(_Framer):
    """Lines out of a byte stream: ``feed(data)``, then ``next_frame()`` (or iterate)
    for each line without its terminator (``b""`` for an empty line) until
    ``NEED_DATA``.

    ``max_line`` bounds the bytes before the terminator: a longer line raises
    ``FrameTooLarge`` once, as soon as the framer holds more than ``max_line`` bytes
    of it, and the rest of it is dropped up to its terminator. ``terminator`` is
    ``b"\\n"`` by default (any non-empty bytes); with ``strip_cr`` a ``\\r`` just
    before it is dropped too, so ``\\r\\n`` lines read the same.
    """

    def __init__(
        self, max_line: int = DEFAULT_MAX_LINE, terminator: bytes = b"\n", strip_cr: bool = True
    ) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        if not terminator:
            raise ValueError("the terminator must not be empty")
        self.max_line = max_line
        self.terminator = bytes(terminator)
        self.strip_cr = strip_cr
        super().__init__()
        self._scan = 0  # where the next terminator search starts: none before it
        self._skipping = False  # inside a refused line: drop up to its terminator

    def feed(self, data: bytes) -> None:
        """Buffer bytes of the stream (any split)."""
        self._scan = max(0, self._scan - self._carry(data))
        if self._skipping:
            self._drop_refused()

    def next_frame(self) -> bytes | NeedData:
        """The next line without its terminator, or ``NEED_DATA``; raises
        ``FrameTooLarge`` for a line past ``max_line`` (call again for the next one)."""
        if self._skipping:  # feed() found no end of the refused line
            return NEED_DATA
        buf, pos, term = self._buf, self._pos, self.terminator
        end = buf.find(term, self._scan)
        if end < 0:
            held = len(buf) - pos
            # a terminator may be cut across reads: its first bytes are not the line's
            if held - (len(term) - 1) > self.max_line:
                self._skipping = True
                self._drop_refused()
                raise FrameTooLarge(
                    f"a line of more than {held - len(term) + 1} bytes, "
                    f"past the limit of {self.max_line} bytes"
                )
            self._scan = max(pos, len(buf) - len(term) + 1)
            return NEED_DATA
        self._pos = self._scan = end + len(term)
        if end - pos > self.max_line:
            raise FrameTooLarge(
                f"a line of {end - pos} bytes, past the limit of {self.max_line} bytes"
            )
        if self.strip_cr and end > pos and buf[end - 1] == _CR:
            end -= 1
        return buf[pos:end]

    def _drop_refused(self) -> bool:
        """Drop the buffered part of a refused line; True once its terminator was seen."""
        term = self.terminator
        end = self._buf.find(term, self._pos)
        if end < 0:
            keep = len(term) - 1  # a terminator's first bytes, if the read cut it
            self._buf = self._buf[len(self._buf) - keep :] if keep else b""
            self._pos = self._scan = 0
            return False
        self._pos = self._scan = end + len(term)
        self._skipping = False
        return True

    def take_rest(self) -> bytes:
        """The buffered bytes not framed yet, which the framer forgets: for a stream
        that changes framing (a text handshake, then binary records)."""
        rest = self._take()
        skipped, self._scan, self._skipping = self._skipping, 0, False
        return b"" if skipped else rest


@final
class LengthPrefixFramer(_Framer):
    """Frames that start with their length: ``feed(data)``, then ``next_frame()`` (or
    iterate) for each frame until ``NEED_DATA``.

    The prefix is an unsigned ``prefix_size``-byte integer (1, 2 or 4), ``byteorder``
    ``"big"`` or ``"little"``, counting ``unit``-byte units (DBN counts 4-byte words).
    By default it counts the body after it; with ``includes_header`` it counts the
    prefix too. A frame is its body, or the prefix and body with ``keep_header``.

    ``max_frame`` bounds the body: a longer one raises ``FrameTooLarge`` as soon as
    the prefix is read, before any of the body is buffered, and its bytes are dropped
    as they arrive. A length shorter than its own prefix (``includes_header``) raises
    ``DecodeError`` and drops the prefix: the stream is most likely out of step, and a
    protocol that cannot find its next frame should close the connection.
    """

    def __init__(
        self,
        prefix_size: int = 4,
        byteorder: Literal["big", "little"] = "big",
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        includes_header: bool = False,
        keep_header: bool = False,
        unit: int = 1,
    ) -> None:
        if prefix_size not in (1, 2, 4):
            raise ValueError(f"prefix_size must be 1, 2 or 4, not {prefix_size}")
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder must be 'big' or 'little', not {byteorder!r}")
        if max_frame < 0 or unit < 1:
            raise ValueError("max_frame must be at least 0 and unit at least 1")
        self.prefix_size = prefix_size
        self.byteorder = byteorder
        self.max_frame = max_frame
        self.includes_header = includes_header
        self.keep_header = keep_header
        self.unit = unit
        # a 1-byte prefix is read by indexing; the others by a struct built once
        order = "<" if byteorder == "little" else ">"
        self._prefix = struct.Struct(order + _PREFIX_CODES[prefix_size])
        super().__init__()
        self._skip = 0  # bytes of a refused body still to drop

    def feed(self, data: bytes) -> None:
        """Buffer bytes of the stream (any split)."""
        if self._skip:  # a refused body: whatever of it was buffered is gone already
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._carry(data)

    def next_frame(self) -> bytes | NeedData:
        """The next frame, or ``NEED_DATA``; raises ``FrameTooLarge`` for a body past
        ``max_frame`` (call again for the next frame)."""
        buf, pos, size = self._buf, self._pos, self.prefix_size
        if len(buf) - pos < size:
            return NEED_DATA
        length: int = buf[pos] if size == 1 else self._prefix.unpack_from(buf, pos)[0]
        length *= self.unit
        body = length - size if self.includes_header else length
        if body < 0:
            self._pos = pos + size
            raise DecodeError(f"a frame length of {length} bytes, shorter than its prefix")
        if body > self.max_frame:
            # drop what is buffered of the body now, the rest in feed(): never held
            dropped = min(body, len(buf) - pos - size)
            self._pos = pos + size + dropped
            self._skip = body - dropped
            raise FrameTooLarge(
                f"a frame of {body} bytes, past the limit of {self.max_frame} bytes"
            )
        end = pos + size + body
        if len(buf) < end:
            return NEED_DATA
        self._pos = end
        return buf[pos if self.keep_header else pos + size : end]

    def take_rest(self) -> bytes:
        """The buffered bytes not framed yet, which the framer forgets (none while a
        refused body is still arriving: its bytes are not a frame's)."""
        self._skip = 0
        return self._take()


__all__ = [
    "DEFAULT_MAX_FRAME",
    "DEFAULT_MAX_LINE",
    "NEED_DATA",
    "LengthPrefixFramer",
    "LineFramer",
    "NeedData",
]
