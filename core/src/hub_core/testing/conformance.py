"""The conformance suite every connection plugin runs against its own simulator.

Subclass ``ConformanceSuite`` in a test module, provide the ``simulator``
fixture (a running loopback simulator: a ``SimulatorHandle``),
``plugin`` (the module or object with the hook implementations) and
``make_config``. Every test here then runs against your plugin through a real
``ExchangeHub``: connect, subscribe, exact tick values, unsubscribe, drop and
reconnect with resubscribe and ``Gap``, malformed input counted, sequence gap,
stall probed and recycled, close. The drop and stall cases check the Gap rule:
every silence longer than ``stale_after_ms`` lies inside a Gap that starts at
the last data received before it. See sdk-docs/writing-a-plugin.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import anyio
import pytest

from hub_core.bus import TICK_TYPES, TypedEventBus
from hub_core.config import ExchangeConfig
from hub_core.hub import ExchangeHub
from hub_core.registry import ExchangeRegistry
from hub_core.simulation import VenueFaults
from hub_core.testing.coverage import DATA_TYPES, assert_blind_windows_covered
from hub_core.ticks import ConnectionState, ConnectionStateChanged, Gap, Trade


def _is_data(event: object) -> bool:
    return type(event).__name__ in DATA_TYPES


def assert_gap_spans_the_silence(events: list[Any], gap: Gap) -> None:
    """The Gap rule for one Gap: it starts at the last data received before it and
    ends at the first data received after it (so no blind moment is outside it)."""
    at = next(i for i, e in enumerate(events) if e is gap)
    before = [e for e in events[:at] if _is_data(e) and e.exchange == gap.exchange]
    after = next((e for e in events[at + 1 :] if _is_data(e) and e.exchange == gap.exchange), None)
    assert before, "a Gap before any data was received"
    assert gap.start_ts == before[-1].ts_recv, (
        f"the Gap starts at {gap.start_ts}, not at the last data received before the "
        f"blindness ({before[-1].ts_recv}): {gap.start_ts - before[-1].ts_recv} ns of it "
        "are in no Gap"
    )
    assert gap.end_ts >= gap.start_ts, "the Gap ends before it starts"
    if after is not None:
        assert gap.end_ts <= after.ts_recv, "the Gap ends after data was flowing again"


@runtime_checkable
class SimulatorHandle(VenueFaults, Protocol):
    """What a plugin's simulator exposes to the suite: where it listens, what it sent,
    and the async faults of ``hub_core.simulation.VenueFaults`` (``drop_connections``,
    ``stall``/``resume``, ``send_malformed``, ``skip_sequence``, ``refuse_credentials``,
    ``refuse_symbol``). A simulator built on ``LoopbackVenue`` is one as it is."""

    endpoint: str
    """Where the simulator listens, as the plugin's ``ExchangeConfig.endpoint`` wants it."""

    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """Every trade sent for ``symbol`` so far, in order, as (price, size, side) fixed point."""


class EventRecorder:
    """Records every event published on a bus, with async waits for conditions."""

    def __init__(self, bus: TypedEventBus) -> None:
        self.events: list[Any] = []
        self._changed = anyio.Event()
        self._subs = [bus.subscribe(t, self._on_event) for t in TICK_TYPES]

    def _on_event(self, event: object) -> None:
        self.events.append(event)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def states(self) -> list[str]:
        return [e.state for e in self.of(ConnectionStateChanged)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds; fail the test naming ``what`` otherwise."""
        try:
            with anyio.fail_after(timeout):
                while not predicate():
                    with anyio.move_on_after(0.05):
                        await self._changed.wait()
        except TimeoutError:
            tail = ", ".join(
                f"{type(e).__name__}:{getattr(e, 'state', getattr(e, 'symbol', ''))}"
                for e in self.events[-8:]
            )
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last events: {tail}")

    def close(self) -> None:
        for s in self._subs:
            s.unsubscribe()


def _is_subsequence(got: list[tuple[int, int, str]], sent: list[tuple[int, int, str]]) -> bool:
    """``got`` appears in ``sent`` as a contiguous run (a receiver may join late)."""
    if not got:
        return False
    n = len(got)
    first = got[0]
    return any(sent[i] == first and sent[i : i + n] == got for i in range(len(sent) - n + 1))


@pytest.mark.hub_conformance
@pytest.mark.anyio
class ConformanceSuite:
    """Base class: subclass it and provide the fixtures below."""

    name: ClassVar[str] = "conf"
    symbols: ClassVar[list[str]] = ["AAA", "BBB"]
    timeout: ClassVar[float] = 10.0
    stale_after_ms: ClassVar[int] = 600
    """The connection's ``stale_after_ms`` in the suite; silences longer than this must
    be inside a Gap."""
    has_sequence: ClassVar[bool] = True
    """False for protocols without sequence numbers (skips the gap test)."""

    # -- provided by the plugin's test module ----------------------------------------
    @pytest.fixture
    def plugin(self) -> object:
        raise NotImplementedError("provide a `plugin` fixture returning the hook module")

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        raise NotImplementedError("implement make_config(endpoint, symbols, **overrides)")

    # -- the harness ----------------------------------------------------------------
    @pytest.fixture
    async def running(
        self, simulator: SimulatorHandle, plugin: object
    ) -> AsyncIterator[tuple[ExchangeHub, EventRecorder, SimulatorHandle]]:
        registry = ExchangeRegistry()
        info = registry.register(plugin, name=f"conformance-{self.name}")
        assert info.enabled, f"plugin refused: {info.error}"
        bus = TypedEventBus()
        recorder = EventRecorder(bus)
        hub = ExchangeHub(bus, registry=registry)
        config = self.make_config(
            simulator.endpoint,
            list(self.symbols),
            reconnect_delay_ms=50,
            reconnect_max_delay_ms=200,
            stale_after_ms=self.stale_after_ms,
            connect_timeout_ms=3000,
        )
        async with hub:
            with anyio.fail_after(self.timeout):
                await hub.connect_exchange(self.name, config)
            yield hub, recorder, simulator
        recorder.close()

    async def _trades_for_every_symbol(self, rec: EventRecorder, after: int = 0) -> None:
        def ok() -> bool:
            seen = {t.symbol for t in rec.events[after:] if isinstance(t, Trade)}
            return all(s in seen for s in self.symbols)

        await rec.wait_for(ok, self.timeout, f"trades for every symbol {self.symbols}")

    # -- the suite ------------------------------------------------------------------
    async def test_connect_subscribe_and_exact_values(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        hub, rec, sim = running
        assert hub.connection_status() == {self.name: True}
        assert ConnectionState.CONNECTED in rec.states()
        await self._trades_for_every_symbol(rec)
        await rec.wait_for(lambda: len(rec.of(Trade)) >= 20, self.timeout, "20 trades")
        for sym in self.symbols:
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
            assert _is_subsequence(got, sim.sent_trades(sym)), (
                f"{sym}: received trades are not exactly what the simulator sent"
            )
            assert all(t.exchange == self.name and t.ts_recv > 0 for t in rec.of(Trade))
        # the recorder saw every tick from the start: the counters must agree exactly
        stats = hub.event_processor().get_stats()
        assert stats.trades_processed == len(rec.of(Trade))
        assert stats.per_exchange[self.name].trades == stats.trades_processed

    async def test_unsubscribe_stops_that_symbol(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        hub, rec, _ = running
        await self._trades_for_every_symbol(rec)
        gone, kept = self.symbols[0], self.symbols[1]
        await hub.unsubscribe_market_data(self.name, [gone])
        await anyio.sleep(0.2)  # anything in flight before the unsubscribe lands
        mark = len(rec.events)
        await rec.wait_for(
            lambda: (
                sum(1 for t in rec.events[mark:] if isinstance(t, Trade) and t.symbol == kept) >= 10
            ),
            self.timeout,
            f"10 more trades of {kept}",
        )
        assert not [t for t in rec.events[mark:] if isinstance(t, Trade) and t.symbol == gone]

    async def test_drop_reconnect_resubscribe_and_gap(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        hub, rec, sim = running
        await self._trades_for_every_symbol(rec)
        mark = len(rec.events)
        t0 = time.time_ns()
        await sim.drop_connections()
        await rec.wait_for(
            lambda: any(
                isinstance(e, ConnectionStateChanged) and e.state == ConnectionState.CONNECTED
                for e in rec.events[mark:]
            ),
            self.timeout,
            "reconnected",
        )
        await self._trades_for_every_symbol(rec, after=mark)  # resubscribed everything
        gaps = [
            e
            for e in rec.events[mark:]
            if isinstance(e, Gap) and not e.symbol and "blind" in e.reason
        ]
        assert gaps, "a reconnect must publish a Gap for the blind window"
        assert gaps[0].end_ts >= t0, "the Gap must be for the drop"
        assert_gap_spans_the_silence(rec.events, gaps[0])
        # and nothing silent for longer than the stale limit is outside a Gap
        assert_blind_windows_covered(rec.events, self.stale_after_ms * 1_000_000)
        states = [e.state for e in rec.events[mark:] if isinstance(e, ConnectionStateChanged)]
        assert ConnectionState.RECONNECTING in states
        await self._trades_for_every_symbol(rec, after=mark)  # resubscribed everything
        assert hub.event_processor().get_stats().reconnects >= 1

    async def test_malformed_input_is_counted_and_feed_continues(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        hub, rec, sim = running
        await self._trades_for_every_symbol(rec)
        await sim.send_malformed()
        await rec.wait_for(
            lambda: hub.event_processor().get_stats().malformed_frames >= 1,
            self.timeout,
            "the malformed frame to be counted",
        )
        mark = len(rec.events)
        await self._trades_for_every_symbol(rec, after=mark)

    async def test_sequence_gap_publishes_gap(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        if not self.has_sequence:
            pytest.skip("protocol has no sequence numbers")
        _hub, rec, sim = running
        await self._trades_for_every_symbol(rec)
        mark = len(rec.events)
        await sim.skip_sequence()
        await rec.wait_for(
            lambda: any(isinstance(e, Gap) for e in rec.events[mark:]),
            self.timeout,
            "a Gap for the skipped sequence number",
        )
        gap = next(e for e in rec.events[mark:] if isinstance(e, Gap))
        assert "sequence" in gap.reason
        await self._trades_for_every_symbol(rec, after=mark)

    async def test_stall_is_probed_then_recycled(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        _hub, rec, sim = running
        await self._trades_for_every_symbol(rec)
        mark = len(rec.events)
        await sim.stall()
        try:
            await rec.wait_for(
                lambda: any(
                    isinstance(e, ConnectionStateChanged) and e.state == ConnectionState.STALE
                    for e in rec.events[mark:]
                ),
                self.timeout,
                "the stall to be detected",
            )
            await rec.wait_for(
                lambda: any(
                    isinstance(e, ConnectionStateChanged)
                    and e.state == ConnectionState.RECONNECTING
                    for e in rec.events[mark:]
                ),
                self.timeout,
                "the stalled connection to be recycled",
            )
        finally:
            await sim.resume()
        await self._trades_for_every_symbol(rec, after=mark)
        # the whole stall, from the last data before it, is inside a Gap
        windows = assert_blind_windows_covered(rec.events, self.stale_after_ms * 1_000_000)
        assert windows, "the stall made no silence longer than stale_after_ms: check the fault"
        stall = max(windows, key=lambda w: w.end_ns - w.start_ns)
        gaps = [e for e in rec.events[mark:] if isinstance(e, Gap) and not e.symbol]
        assert any(g.start_ts == stall.start_ns for g in gaps), (
            "no Gap starts at the last data received before the stall "
            f"({stall.start_ns}); Gaps: {[(g.start_ts, g.end_ts, g.reason) for g in gaps]}"
        )

    async def test_close_publishes_closed(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        hub, rec, _ = running
        await self._trades_for_every_symbol(rec)
        await hub.disconnect_exchange(self.name)
        assert rec.states()[-1] == ConnectionState.CLOSED
        mark = len(rec.events)
        await anyio.sleep(0.2)
        assert not [e for e in rec.events[mark:] if isinstance(e, Trade)]
        assert hub.connection_status() == {}
