"""Fixtures of the websocket plugin's tests: the recorded traffic, a sink on a fresh bus,
and the transport parameter every end-to-end test runs under."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_core import TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.testing import EventRecorder
from hub_plugin_websocket.recorded import Recording, load_recording

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "binance-spot-2021-10-12.ws.txt"
TRANSPORTS = ["websockets", "picows"]


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
def sink(bus: TypedEventBus) -> ConnectionSink:
    return EventProcessor(bus).sink_for("binance")


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)
