"""``--jsonl``: every bus event as one JSON object a line on stdout.

Each line is ``{"type": "<TickClass>", **tick.as_dict()}``: ``"type"``, then
``"exchange"`` (the connection's TOML name), ``"symbol"`` and every other
field under its attribute name, prices and sizes as raw fixed-point ints.

Lines are encoded with msgspec straight into one growing ``bytearray`` and
written in batches (every ``FLUSH_INTERVAL`` seconds, when the batch passes
``HIGH_WATER`` bytes, and at exit), so a busy feed costs one ``as_dict()``
and one encode per event, not one system call. A closed pipe
(``hub run --jsonl | head``) is a clean stop, reported through ``on_closed``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import anyio
import msgspec

from hub_core.bus import TICK_TYPES, Subscription, TypedEventBus

log = logging.getLogger("hub_core.cli.jsonl")

FLUSH_INTERVAL = 0.05
"""Seconds between batched writes: low enough that a reader sees events promptly."""
HIGH_WATER = 1 << 16
"""Bytes buffered before a write happens right away (bounds memory on a busy feed)."""

_COMMA = 0x2C
_NEWLINE = 0x0A


class JsonlWriter:
    """Encodes bus events to JSON lines and writes them to a binary stream in batches."""

    def __init__(
        self,
        out: BinaryIO,
        *,
        on_closed: Callable[[], object] | None = None,
        high_water: int = HIGH_WATER,
    ) -> None:
        self._out = out
        self._on_closed = on_closed
        self._high_water = high_water
        self._buf = bytearray()
        self._encoder = msgspec.json.Encoder()
        self._subs: list[Subscription] = []
        self.closed = False
        """True once the reader went away (broken pipe); nothing more is written."""
        self.lines = 0

    def encoder_for(self, type_name: str) -> Callable[[Any], None]:
        """A bus handler that appends one line per event of the type called ``type_name``."""
        # The line is spliced rather than built as a merged dict: the prefix
        # '{"type":"Trade",' is copied, as_dict() is encoded over its trailing
        # comma, and the '{' msgspec writes there is turned back into ','.
        # That saves a dict copy per event.
        prefix = b'{"type":' + self._encoder.encode(type_name) + b","
        comma_at = len(prefix) - 1
        buf = self._buf
        encode_into = self._encoder.encode_into
        high_water = self._high_water

        def write_event(tick: Any) -> None:
            if self.closed:
                return
            start = len(buf) + comma_at
            buf.extend(prefix)
            encode_into(tick.as_dict(), buf, start)
            buf[start] = _COMMA
            buf.append(_NEWLINE)
            self.lines += 1
            if len(buf) >= high_water:
                self.flush()

        return write_event

    def attach(self, bus: TypedEventBus) -> None:
        """Subscribe one handler per event type the bus carries."""
        for tick_type in TICK_TYPES:
            self._subs.append(bus.subscribe(tick_type, self.encoder_for(tick_type.__name__)))

    def detach(self) -> None:
        """Unsubscribe every handler (events after this are not written)."""
        for sub in self._subs:
            sub.unsubscribe()
        self._subs.clear()

    def flush(self) -> None:
        """Write what is buffered. A closed pipe marks the writer closed, never raises."""
        buf = self._buf
        if not buf:
            return
        if self.closed:
            buf.clear()
            return
        try:
            self._out.write(buf)
            self._out.flush()
        except BrokenPipeError:
            self._reader_gone()
        except ValueError:  # the stream itself was closed under us
            self._reader_gone()
        finally:
            buf.clear()

    def _reader_gone(self) -> None:
        self.closed = True
        _silence_stdout(self._out)
        log.info("stdout closed by the reader; stopping")
        if self._on_closed is not None:
            self._on_closed()

    async def run(self) -> None:
        """Flush every ``FLUSH_INTERVAL`` seconds until cancelled."""
        while not self.closed:
            await anyio.sleep(FLUSH_INTERVAL)
            self.flush()

    def close(self) -> None:
        """Detach from the bus and write what is left."""
        self.detach()
        self.flush()


def _silence_stdout(out: BinaryIO) -> None:
    """Point fd 1 at /dev/null after a broken pipe.

    Otherwise the interpreter's own flush of ``sys.stdout`` at exit raises
    BrokenPipeError again and prints "Exception ignored" to stderr.
    """
    if out is not getattr(sys.stdout, "buffer", None):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def event_to_json(tick: Any) -> bytes:
    """One event as the JSON object ``--jsonl`` writes (without the newline)."""
    data: dict[str, object] = {"type": type(tick).__name__}
    data.update(tick.as_dict())
    return msgspec.json.encode(data)
