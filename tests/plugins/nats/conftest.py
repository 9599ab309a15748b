"""Fixtures of the NATS plugin tests: a real nats-server of each test's own (on a free
loopback port, JetStream on, its own store directory), two hubs, collected ticks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import hub_plugin_nats
from hub_core import (
    BookClear,
    BookSnapshot,
    BookUpdate,
    ConnectionStateChanged,
    ExchangeHub,
    Gap,
    Quote,
    Trade,
)
from hub_core.registry import ExchangeRegistry

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One nats-server process on loopback; ``stop()`` / ``start()`` keep the port."""

    def __init__(self, store: Path, *args: str) -> None:
        if NATS_SERVER is None:
            message = "nats-server is not installed (apt-get install nats-server)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)  # CI must run these, never skip them
            pytest.skip(message)
        self.port = _free_port()
        self.store = store
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert NATS_SERVER is not None
        self.proc = subprocess.Popen(
            [
                NATS_SERVER,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"nats-server did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "js")
    try:
        yield server
    finally:
        server.stop()


def registry() -> ExchangeRegistry:
    """A registry with the NATS plugin alone (never whatever else is installed)."""
    reg = ExchangeRegistry()
    info = reg.register(hub_plugin_nats, name="nats")
    assert info.enabled, info.error
    return reg


class Collected:
    """Every event a hub's bus publishes, in order."""

    TYPES = (Trade, Quote, BookUpdate, BookClear, BookSnapshot, Gap, ConnectionStateChanged)

    def __init__(self, hub: ExchangeHub) -> None:
        self.events: list[Any] = []
        for kind in self.TYPES:
            hub.bus.subscribe(kind, self.events.append)

    def of(self, *kinds: type, exchange: str | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, kinds) and (exchange is None or e.exchange == exchange)
        ]

    def market(self, exchange: str) -> list[Any]:
        return self.of(Trade, Quote, BookUpdate, BookClear, BookSnapshot, exchange=exchange)


async def until(cond: Any, seconds: float = 10.0, what: str = "") -> None:
    """Wait for ``cond()`` (generous: the machine is shared)."""
    try:
        with anyio.fail_after(seconds):
            while True:
                if cond():
                    return
                await anyio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or cond}") from None


@pytest.fixture
async def hubs() -> AsyncIterator[tuple[ExchangeHub, ExchangeHub]]:
    """A publishing hub and a receiving hub, in this process."""
    async with ExchangeHub(registry=registry()) as a, ExchangeHub(registry=registry()) as b:
        yield a, b
