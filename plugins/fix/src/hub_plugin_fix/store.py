"""Where a FIX session keeps its sequence numbers between connections.

FIX sequence numbers outlive a TCP connection: after a reconnect (or a
restart) each side continues where it stopped, unless a Logon with
ResetSeqNumFlag (141=Y) starts both at 1. ``FileStore`` keeps them in a small
text file under ``store_path`` so that a restarted hub continues the session;
``MemoryStore`` keeps them for the life of the process (the factory holds
one per session, so reconnects continue the session). By default (no
``store_path``) the file lives in the per-user state directory
(``default_state_dir()``), one per session and venue address, so a second
``hub run`` continues the session where the first stopped.

The outgoing number is saved before each message goes out (it must never go
back: the counterparty would log us out with "MsgSeqNum too low"). The
incoming number is saved when the connection asks (``flush``), at most a few
times a second: after a crash it may be a little behind, and the counterparty
then answers our ResendRequest with a gap fill, which is harmless.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from hub_core.plugin import ConfigError


class MemoryStore:
    """Sequence numbers in memory: ``next_sender`` (ours) and ``next_target`` (theirs)."""

    def __init__(self) -> None:
        self.next_sender = 1
        self.next_target = 1
        self._saved = (1, 1)

    def reset(self) -> None:
        """Both sides start again at 1 (a Logon with ResetSeqNumFlag)."""
        self.next_sender = 1
        self.next_target = 1
        self.save()

    @property
    def dirty(self) -> bool:
        """Numbers changed since the last ``save``."""
        return (self.next_sender, self.next_target) != self._saved

    def save(self) -> None:
        """Make the current numbers durable (nothing to do in memory)."""
        self._saved = (self.next_sender, self.next_target)

    def describe(self) -> str:
        """Where the numbers are kept, for messages: ``in memory`` or the file's path."""
        return "in memory"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def session_file_name(begin_string: str, sender: str, target: str) -> str:
    """``FIX.4.4-HUB-VENUE.seqnums``: one file per session, safe on any file system."""
    parts = (_UNSAFE.sub("_", p) for p in (begin_string, sender, target))
    return "-".join(parts) + ".seqnums"


MEMORY: Final = ":memory:"
"""``options.store_path`` value that keeps the sequence numbers in memory only."""


def default_state_dir() -> Path:
    """Where sequence numbers live when ``options.store_path`` is unset: the per-user
    state directory, ``$XDG_STATE_HOME/hub/fix`` (``~/.local/state/hub/fix`` when the
    variable is unset or not absolute, as the XDG spec says)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "hub" / "fix"


def default_file_name(begin_string: str, sender: str, target: str, host: str, port: int) -> str:
    """``FIX.4.4-HUB-VENUE-127.0.0.1_9878.seqnums``: in the shared state directory one
    file per session *and* venue address, so two venues (or a simulator and a venue)
    with the same CompIDs never share numbers. Only host and port go into the name
    (never credentials)."""
    base = session_file_name(begin_string, sender, target).removesuffix(".seqnums")
    return f"{base}-{_UNSAFE.sub('_', host)}_{port}.seqnums"


class FileStore(MemoryStore):
    """Sequence numbers in ``<store_path>/<begin>-<sender>-<target>.seqnums``.

    The file holds one line, ``<next sender seq> <next target seq>``, replaced
    atomically (write a temporary file, then rename) so a crash never leaves
    half a file.
    """

    def __init__(self, directory: str | os.PathLike[str], file_name: str) -> None:
        super().__init__()
        self.path = Path(directory) / file_name
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"options.store_path: cannot create {self.path.parent}: {exc.strerror or exc}",
                hint="point store_path at a writable directory",
            ) from None
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"options.store_path: cannot read {self.path}: {exc}",
                hint="fix the file's permissions, or delete it to start the session at 1",
            ) from None
        fields = text.split()
        if len(fields) != 2 or not all(f.isdigit() and int(f) > 0 for f in fields):
            raise ConfigError(
                f"options.store_path: {self.path} does not hold two sequence numbers",
                hint="delete the file to start the session at 1 (and reset with the venue)",
            )
        self.next_sender = int(fields[0])
        self.next_target = int(fields[1])
        self._saved = (self.next_sender, self.next_target)

    def save(self) -> None:
        """Write both numbers atomically."""
        if not self.dirty and self.path.exists():
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{self.next_sender} {self.next_target}\n", encoding="ascii")
        os.replace(tmp, self.path)
        super().save()

    def describe(self) -> str:
        return str(self.path)


__all__ = [
    "MEMORY",
    "FileStore",
    "MemoryStore",
    "default_file_name",
    "default_state_dir",
    "session_file_name",
]
