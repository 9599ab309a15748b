"""Recorded WebSocket sessions (the cryptofeed ``sample_data`` text format).

One message a line:

* first line: ``<url> <-> <connect_unix_ts>`` (the URL that was opened);
* a message the client sent: ``<url> <- <unix_ts>: <json>``;
* a message received: ``<recv_unix_ts>: <raw message text>``.

The simulator replays the received messages (``replay=path``); the tests feed
them to a dialect without sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Recording", "RecordedMessage", "load_recording", "parse_recording"]


@dataclass(frozen=True)
class RecordedMessage:
    """One message, as received (``text`` is the raw frame's UTF-8 bytes)."""

    ts: float
    text: bytes


@dataclass
class Recording:
    """A recorded session: what was opened, sent and received."""

    url: str = ""
    connect_ts: float = 0.0
    sent: list[RecordedMessage] = field(default_factory=list)
    received: list[RecordedMessage] = field(default_factory=list)


def parse_recording(text: str) -> Recording:
    """Parse the text of a recording; raises ``ValueError`` naming the bad line."""
    rec = Recording()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if " <-> " in line and not rec.url and not line.startswith("{"):
            url, _, ts = line.rpartition(" <-> ")
            rec.url = url.strip()
            rec.connect_ts = _ts(ts, lineno)
            continue
        head, sep, body = line.partition(": ")
        if not sep:
            raise ValueError(f"line {lineno}: expected '<ts>: <message>'")
        if " <- " in head:
            _, _, ts = head.rpartition(" <- ")
            rec.sent.append(RecordedMessage(_ts(ts, lineno), body.encode()))
        else:
            rec.received.append(RecordedMessage(_ts(head, lineno), body.encode()))
    return rec


def _ts(text: str, lineno: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"line {lineno}: {text!r} is not a unix timestamp") from None


def load_recording(path: str | Path) -> Recording:
    """Read and parse a recording file."""
    return parse_recording(Path(path).read_text(encoding="utf-8"))
