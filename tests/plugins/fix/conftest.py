"""Fixtures of the FIX plugin tests: anyio on asyncio, a real sink, message builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import simplefix  # type: ignore[import-untyped]

from hub_core import BookSnapshot, BookUpdate, Gap, Quote, Trade, TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The per-user state directory (default home of the sequence-number files) is a
    fresh temporary directory in every test: never the real ``~/.local/state``."""
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(path))
    return path / "hub" / "fix"


class Collected:
    """A real bus and sink, with every published tick and gap kept in order."""

    def __init__(self, exchange: str = "fx") -> None:
        self.bus = TypedEventBus()
        self.processor = EventProcessor(self.bus)
        self.sink: ConnectionSink = self.processor.sink_for(exchange)
        self.events: list[Any] = []
        for kind in (Trade, Quote, BookUpdate, BookSnapshot, Gap):
            self.bus.subscribe(kind, self.events.append)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def collected() -> Collected:
    return Collected()


def fix_message(
    msg_type: str,
    seq: int,
    body: list[tuple[int, object]],
    *,
    sender: str = "VENUE",
    target: str = "HUB",
    begin: str = "FIX.4.4",
    sending_time: str = "20240102-12:00:00.123",
    poss_dup: bool = False,
) -> bytes:
    """A complete, valid FIX message built with simplefix (the reference encoder)."""
    m = simplefix.FixMessage()
    m.append_pair(8, begin)
    m.append_pair(35, msg_type)
    m.append_pair(49, sender)
    m.append_pair(56, target)
    m.append_pair(34, seq)
    if poss_dup:
        m.append_pair(43, "Y")
    m.append_pair(52, sending_time)
    for tag, value in body:
        m.append_pair(tag, value)
    data: bytes = m.encode()
    return data


def incremental(seq: int, entries: list[list[tuple[int, object]]], **kw: Any) -> bytes:
    """A 35=X with the given entries (each a list of fields, 279 first)."""
    body: list[tuple[int, object]] = [(262, "r1"), (268, len(entries))]
    for e in entries:
        body.extend(e)
    return fix_message("X", seq, body, **kw)
