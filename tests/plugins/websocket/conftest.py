"""Fixtures of the websocket plugin's tests: the recorded traffic, a sink on a fresh bus,
the transport parameter every end-to-end test runs under, a CA made for the TLS tests,
and the harness the Coinbase and Kraken end-to-end tests share (``running_venue``,
``book_levels``)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trustme

import hub_plugin_websocket
from hub_core import (
    BookSnapshot,
    BookUpdate,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Gap,
    TypedEventBus,
)
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.testing import ConformanceSuite, EventRecorder, SimulatorHandle
from hub_plugin_websocket.recorded import Recording, load_recording

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "binance-spot-2021-10-12.ws.txt"
TRANSPORTS = ["websockets", "picows"]
FAST = {
    "reconnect_delay_ms": 50,
    "reconnect_max_delay_ms": 200,
    "connect_timeout_ms": 3000,
    "stale_after_ms": 0,
}
"""Connection settings of the end-to-end tests: quick reconnects, no stale probing."""


@pytest.fixture(scope="session")
def recording() -> Recording:
    return load_recording(RECORDED)


@pytest.fixture
def bus() -> TypedEventBus:
    return TypedEventBus()


@pytest.fixture
def recorder(bus: TypedEventBus) -> EventRecorder:
    return EventRecorder(bus)


@pytest.fixture
def exchange() -> str:
    """The connection name ``sink`` delivers as (a test module may override it)."""
    return "binance"


@pytest.fixture
def sink(bus: TypedEventBus, exchange: str) -> ConnectionSink:
    return EventProcessor(bus).sink_for(exchange)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server context whose certificate (127.0.0.1, localhost) a CA made here signed,
    and that CA's PEM file (what a client passes as ``ca_file``)."""
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return server, path


@asynccontextmanager
async def running_venue(
    name: str,
    endpoint: str,
    transport: str,
    symbols: list[str],
    channels: list[str],
    *,
    options: dict[str, Any] | None = None,
    wait: bool = True,
    **overrides: Any,
) -> AsyncIterator[tuple[ExchangeHub, EventRecorder]]:
    """An ``ExchangeHub`` with one websocket connection named after its dialect (``name``),
    ``options`` added to its channels and transport; yields it and a recorder of its bus."""
    registry = ExchangeRegistry()
    info = registry.register(hub_plugin_websocket, name="websocket")
    assert info.enabled, info.error
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    cfg = ExchangeConfig.websocket(
        name,
        endpoint,
        symbols=symbols,
        options={
            "channels": channels,
            "transport": transport,
            "subscribe_timeout_s": 3.0,
            **(options or {}),
        },
        **(FAST | overrides),
    )
    async with ExchangeHub(bus, registry=registry) as hub:
        await hub.connect_exchange(name, cfg, wait=wait, timeout=10)
        yield hub, rec
    rec.close()


def book_levels(
    rec: EventRecorder, symbol: str, after: int = 0
) -> dict[tuple[str, int], int] | None:
    """The book a subscriber rebuilds: the last BookSnapshot, then the updates after it
    (``None`` when there is none, or a ``Gap`` of the symbol or of all, ``""``, came
    after it: the hub publishes a reconnect's Gap before it resubscribes, so before the
    fresh snapshot)."""
    levels: dict[tuple[str, int], int] | None = None
    for e in rec.events[after:]:
        if isinstance(e, BookSnapshot) and e.symbol == symbol:
            levels = {("B", p): q for p, q in e.bids} | {("A", p): q for p, q in e.asks}
        elif isinstance(e, BookUpdate) and e.symbol == symbol and levels is not None:
            if e.size:
                levels[(e.side, e.price)] = e.size
            else:
                levels.pop((e.side, e.price), None)
        elif isinstance(e, Gap) and e.symbol in (symbol, ""):
            levels = None  # a subscriber must not trust the book past a Gap
    return levels


def rebuilt_book(rec: EventRecorder, symbol: str, after: int = 0) -> dict[tuple[str, int], int]:
    """``book_levels``, which must exist."""
    levels = book_levels(rec, symbol, after)
    assert levels is not None, f"no usable book of {symbol}"
    return levels


class WebSocketConformance(ConformanceSuite):
    """The core's conformance suite for one dialect (``name``) over one ``transport``,
    against ``venue`` (a simulator class) streaming ``channels``."""

    transport: ClassVar[str] = "websockets"
    channels: ClassVar[list[str]] = []
    seed: ClassVar[int] = 0
    venue: ClassVar[Any]

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[SimulatorHandle]:
        async with self.venue(self.symbols, rate=150, seed=self.seed) as sim:
            assert isinstance(sim, SimulatorHandle)
            yield sim

    @pytest.fixture
    def plugin(self) -> object:
        return hub_plugin_websocket

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig.websocket(
            self.name,
            endpoint,
            symbols=symbols,
            options={
                "channels": list(self.channels),
                "transport": self.transport,
                "subscribe_timeout_s": 2.0,
            },
            **overrides,
        )
