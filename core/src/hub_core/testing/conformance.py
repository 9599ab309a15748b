"""The conformance suite every connection plugin runs against its own simulator.

Subclass ``ConformanceSuite`` in a test module, provide the ``simulator``
fixture (a running loopback simulator: a ``SimulatorHandle``),
``plugin`` (the module or object with the hook implementations) and
``make_config``. Every test here then runs against your plugin through a real
``ExchangeHub``: connect, subscribe, exact tick values, unsubscribe, drop and
reconnect with resubscribe and ``Gap``, malformed input counted, sequence gap
(its symbol and numbers) and numbered trades, stall probed and recycled, a quiet
link probed and kept, bounded reads, back-pressure from a ``"block"`` stream,
failover to a backup endpoint, refused symbols and credentials, close. Some cases
drive the plugin's connection directly, as the supervisor does, to check the
``ExchangeConnection`` contract: ``run()`` raises when the link drops, ``close()``
returns promptly and ends ``run()``, ``probe()`` is answered. The drop and stall
cases check the Gap rule: every silence longer than ``stale_after_ms`` lies inside
a Gap that starts at the last data received before it. Cases that need an optional
fault of the ``SimulatorHandle`` (``send_oversized``, ``refuse_symbol``,
``refuse_credentials``) are skipped, with the reason, when it lacks them. See
sdk-docs/conformance.md for every case, what it asserts and its timings.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import anyio
import pytest

from hub_core.bus import TICK_TYPES, TypedEventBus
from hub_core.config import ExchangeConfig
from hub_core.contracts import ExchangeConnection
from hub_core.errors import HubError, SubscriptionError
from hub_core.hub import ExchangeHub
from hub_core.processor import EventProcessor
from hub_core.redact import redact_endpoint
from hub_core.registry import ExchangeRegistry
from hub_core.simulation import VenueFaults
from hub_core.supervisor import endpoint_address, endpoint_host
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


# -- what the added cases share ---------------------------------------------------------
# The supervisor retries these quietly when run() raises them; anything else is logged
# as a plugin bug (then retried too).
_LINK_ERRORS = (
    HubError,
    OSError,
    EOFError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    TimeoutError,
)

_CLOSE_LIMIT_S = 2.0
"""How long the supervisor lets ``close()`` run before it abandons it (and the socket)."""


def _states_after(events: list[Any], mark: int, *states: str) -> list[ConnectionStateChanged]:
    return [e for e in events[mark:] if isinstance(e, ConnectionStateChanged) and e.state in states]


def _data_after(events: list[Any], mark: int) -> list[Any]:
    return [e for e in events[mark:] if _is_data(e)]


@dataclass
class RunOutcome:
    """How one ``run()`` ended: the direct cases start it in a task of their own."""

    ended: anyio.Event = field(default_factory=anyio.Event)
    returned: bool = False
    error: BaseException | None = None

    def describe(self) -> str:
        if not self.ended.is_set():
            return "still running"
        if self.returned:
            return "returned"
        return f"raised {type(self.error).__name__}: {self.error}"


async def _watch_run(conn: ExchangeConnection, outcome: RunOutcome) -> None:
    try:
        await conn.run()
    except Exception as exc:
        outcome.error = exc
    else:
        outcome.returned = True
    finally:
        outcome.ended.set()


@dataclass
class DirectSession:
    """One connection made by the plugin's factory and driven by the case as the
    supervisor drives it (``connect``, ``run`` in a task, ``subscribe``), without a hub:
    the cases that check the ``ExchangeConnection`` contract itself use it."""

    connection: ExchangeConnection
    recorder: EventRecorder
    simulator: SimulatorHandle
    run: RunOutcome


def _replace_port(endpoint: str, port: int) -> str:
    """``endpoint`` with its port replaced by ``port`` (scheme, path and query kept)."""
    host = endpoint_host(endpoint)
    old = endpoint_address(endpoint).rsplit(":", 1)[-1]
    for hostport in (f"[{host}]:{old}", f"{host}:{old}"):
        at = endpoint.rfind(hostport)
        if at >= 0:
            head = hostport[: len(hostport) - len(old)]
            return endpoint[:at] + head + str(port) + endpoint[at + len(hostport) :]
    pytest.fail(
        f"cannot find host:port in {endpoint!r}: override unreachable_endpoint() in the suite"
    )


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
    gaps_have_sequence: ClassVar[bool] = True
    """With ``has_sequence``: sequence Gaps say which numbers are missing
    (``start_seq``/``end_seq``). False for a venue whose breaks are found another way
    (a book checksum) and have no numbers to give."""
    recovers_on_reconnect: ClassVar[bool] = False
    """True for a venue that replays what a dropped connection missed (Databento's
    intraday replay): the drop case then asserts no blind Gap and that the trades
    across the drop are exactly what the simulator sent, none missing, none twice."""
    trades_have_sequence: ClassVar[bool] = True
    """With ``has_sequence``: trades carry the venue's sequence number or trade id in
    ``sequence``. False for a venue whose sequence numbers are on other messages only."""

    # -- provided by the plugin's test module ----------------------------------------
    @pytest.fixture
    def plugin(self) -> object:
        raise NotImplementedError("provide a `plugin` fixture returning the hook module")

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        raise NotImplementedError("implement make_config(endpoint, symbols, **overrides)")

    def unreachable_endpoint(self, endpoint: str, port: int) -> str:
        """``endpoint`` pointed at ``port`` on the same host, where nothing listens (the
        failover case's primary). Override it if your endpoints are not ``host:port`` or
        a URL with one."""
        return _replace_port(endpoint, port)

    # -- the harness ----------------------------------------------------------------
    def _config(self, endpoint: str, **extra: Any) -> ExchangeConfig:
        return self.make_config(
            endpoint,
            list(self.symbols),
            reconnect_delay_ms=50,
            reconnect_max_delay_ms=200,
            stale_after_ms=self.stale_after_ms,
            connect_timeout_ms=3000,
            **extra,
        )

    def _registry(self, plugin: object) -> ExchangeRegistry:
        registry = ExchangeRegistry()
        info = registry.register(plugin, name=f"conformance-{self.name}")
        assert info.enabled, f"plugin refused: {info.error}"
        return registry

    @asynccontextmanager
    async def _hub(
        self, plugin: object, config: ExchangeConfig
    ) -> AsyncIterator[tuple[ExchangeHub, EventRecorder]]:
        """A hub with the plugin registered, connected to ``config`` (up to ``timeout``)."""
        bus = TypedEventBus()
        recorder = EventRecorder(bus)
        hub = ExchangeHub(bus, registry=self._registry(plugin))
        try:
            async with hub:
                with anyio.fail_after(self.timeout):
                    await hub.connect_exchange(self.name, config)
                yield hub, recorder
        finally:
            recorder.close()

    @pytest.fixture
    async def running(
        self, simulator: SimulatorHandle, plugin: object
    ) -> AsyncIterator[tuple[ExchangeHub, EventRecorder, SimulatorHandle]]:
        async with self._hub(plugin, self._config(simulator.endpoint)) as (hub, recorder):
            yield hub, recorder, simulator

    @pytest.fixture
    async def direct(
        self, simulator: SimulatorHandle, plugin: object
    ) -> AsyncIterator[DirectSession]:
        """A ``DirectSession`` subscribed to every symbol; closed (bounded) afterwards."""
        config = self._config(simulator.endpoint)
        config = config.model_copy(update={"name": self.name})
        factory = self._registry(plugin).factory(config.protocol, exchange=self.name)
        factory.validate_options(config)
        bus = TypedEventBus()
        recorder = EventRecorder(bus)
        sink = EventProcessor(bus).sink_for(self.name)
        sink.reset_session()
        conn = factory.create(config, sink)
        outcome = RunOutcome()
        try:
            async with anyio.create_task_group() as tg:
                try:
                    with anyio.fail_after(self.timeout):
                        await conn.connect(simulator.endpoint)
                    tg.start_soon(_watch_run, conn, outcome)
                    with anyio.fail_after(self.timeout):
                        await conn.subscribe(list(self.symbols))
                    yield DirectSession(conn, recorder, simulator, outcome)
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_LIMIT_S):
                        await conn.close()
                    tg.cancel_scope.cancel()
        finally:
            recorder.close()

    def _assert_trades_are_a_run(self, rec: EventRecorder, sim: SimulatorHandle) -> None:
        """Every symbol's trades, first to last received, are exactly a run of what the
        simulator sent: none missing, none twice (what a replaying venue promises)."""
        for sym in self.symbols:
            got = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
            assert _is_subsequence(got, sim.sent_trades(sym)), (
                f"{sym}: the trades across the reconnect are not exactly what the simulator "
                "sent (one missing or delivered twice at the seam)"
            )

    async def _trades_for_every_symbol(self, rec: EventRecorder, after: int = 0) -> None:
        def ok() -> bool:
            seen = {t.symbol for t in rec.events[after:] if isinstance(t, Trade)}
            return all(s in seen for s in self.symbols)

        await rec.wait_for(ok, self.timeout, f"trades for every symbol {self.symbols}")

    # -- the suite ------------------------------------------------------------------
    async def test_connect_subscribe_and_exact_values(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """Connected and healthy; trades for every symbol; 20 trades whose (price, size,
        side) are exactly a run of what the simulator sent; the stats count every trade
        the bus carried. Timing: within ``timeout``."""
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
        """After unsubscribing the first symbol (and 0.2 s for what was in flight), 10
        more trades of the second arrive and none of the first."""
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
        """The simulator drops every connection: ``reconnecting``, ``connected`` again,
        trades for every symbol (resubscribed), a connection-wide "blind" Gap from the
        last data before the drop to the first after, no silence over ``stale_after_ms``
        outside a Gap, and ``reconnects`` counted. With ``recovers_on_reconnect``: no
        Gap, and every symbol's trades from the first to the last received are exactly a
        run of what the simulator sent. Timing: within ``timeout``."""
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
        if self.recovers_on_reconnect:
            assert not gaps, f"the venue replays what was missed, yet a Gap came: {gaps[0]}"
            await anyio.sleep(0.3)  # a few trades past the seam
            self._assert_trades_are_a_run(rec, sim)
            assert hub.event_processor().get_stats().reconnects >= 1
            return
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
        """One malformed frame is counted in ``malformed_frames`` and trades for every
        symbol keep coming. Timing: within ``timeout``."""
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
        """One sequence number skipped on every stream: a Gap whose reason says
        "sequence", for the whole connection ("") or for each subscribed symbol and no
        other, with ``start_seq`` > 0 and ``end_seq`` >= ``start_seq`` (which numbers
        are missing; unless ``gaps_have_sequence`` is False), ``start_ts`` <= ``end_ts``;
        the feed continues. Skipped when ``has_sequence`` is False.
        Timing: within ``timeout``."""
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
        # one number was lost on every stream: a Gap for the whole connection, or one per
        # symbol for a venue that numbers each symbol's messages, and only those symbols
        wanted = set(self.symbols)

        def sequence_gaps() -> list[Gap]:
            return [e for e in rec.events[mark:] if isinstance(e, Gap) and "sequence" in e.reason]

        def covered() -> bool:
            symbols = {g.symbol for g in sequence_gaps()}
            return "" in symbols or wanted <= symbols

        await rec.wait_for(
            covered,
            self.timeout,
            f"a sequence Gap for the connection or for each of {self.symbols}",
        )
        for g in sequence_gaps():
            assert g.exchange == self.name
            assert g.symbol in ("", *self.symbols), (
                f"a sequence Gap for {g.symbol!r}, which is not subscribed ({self.symbols})"
            )
            assert not self.gaps_have_sequence or 0 < g.start_seq <= g.end_seq, (
                f"the sequence Gap {g.reason!r} does not say which numbers are missing "
                f"(start_seq={g.start_seq}, end_seq={g.end_seq}): pass them to sink.gap()"
            )
            assert g.start_ts <= g.end_ts, "the sequence Gap ends before it starts"

    async def test_stall_is_probed_then_recycled(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """The simulator stops sending anything: ``stale``, then ``reconnecting``; after
        ``resume()`` trades for every symbol, and a connection-wide Gap starts exactly at
        the last data before the stall (with ``recovers_on_reconnect``: no data lost, the
        trades across the stall exactly a run of what was sent). Timing: the hub probes
        after ``stale_after_ms`` of silence and recycles half that later; each step
        within ``timeout``."""
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
        if self.recovers_on_reconnect:
            # replayed: the silence hid nothing, so the trades across it are whole
            self._assert_trades_are_a_run(rec, sim)
            return
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
        """``disconnect_exchange``: the last state is ``closed``, no trade in the next
        0.2 s, and the connection is gone from ``connection_status()``."""
        hub, rec, _ = running
        await self._trades_for_every_symbol(rec)
        await hub.disconnect_exchange(self.name)
        assert rec.states()[-1] == ConnectionState.CLOSED
        mark = len(rec.events)
        await anyio.sleep(0.2)
        assert not [e for e in rec.events[mark:] if isinstance(e, Trade)]
        assert hub.connection_status() == {}

    # -- sequence numbers on ticks --------------------------------------------------------
    async def test_trades_carry_sequence_numbers(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """Every trade carries the venue's number (``sequence`` > 0), and within one
        session a symbol's numbers never go backwards. Skipped when ``has_sequence`` or
        ``trades_have_sequence`` is False. Timing: 20 trades, within ``timeout``."""
        if not (self.has_sequence and self.trades_have_sequence):
            pytest.skip("the protocol's trades carry no sequence numbers")
        _hub, rec, _ = running
        await self._trades_for_every_symbol(rec)
        await rec.wait_for(lambda: len(rec.of(Trade)) >= 20, self.timeout, "20 trades")
        trades = rec.of(Trade)
        unnumbered = [t for t in trades if t.sequence <= 0]
        assert not unnumbered, (
            f"{len(unnumbered)} of {len(trades)} trades carry sequence {unnumbered[0].sequence}: "
            "pass the venue's sequence number (or trade id) to the sink's trade methods"
        )
        for sym in self.symbols:
            seqs = [t.sequence for t in trades if t.symbol == sym]
            back = [(a, b) for a, b in itertools.pairwise(seqs) if b < a]
            assert not back, f"{sym}: sequence numbers go backwards in one session: {back[:3]}"

    # -- the ExchangeConnection contract, without a hub ------------------------------------
    async def test_run_raises_when_the_link_drops(self, direct: DirectSession) -> None:
        """When the venue drops the link, ``run()`` raises a link error
        (``ConnectionFailed``, ``OSError``, ``ProtocolError``...): returning means "the
        venue ended the session on purpose". Timing: ``run()`` must end within
        ``timeout`` of the drop."""
        rec, sim, run = direct.recorder, direct.simulator, direct.run
        await self._trades_for_every_symbol(rec)
        assert not run.ended.is_set(), f"run() ended before any fault: {run.describe()}"
        await sim.drop_connections()
        with anyio.move_on_after(self.timeout):
            await run.ended.wait()
        assert run.ended.is_set(), f"run() still reads {self.timeout}s after the link dropped"
        assert not run.returned, (
            "run() returned when the venue dropped the link: raise ConnectionFailed "
            "(a return tells the hub the venue ended the session on purpose)"
        )
        assert isinstance(run.error, _LINK_ERRORS), (
            f"run() {run.describe()} when the link dropped: raise ConnectionFailed, "
            "OSError or ProtocolError (the hub logs anything else as a plugin bug)"
        )

    async def test_close_returns_promptly_and_ends_run(self, direct: DirectSession) -> None:
        """``close()`` returns within 2 s (the hub abandons a close that takes longer,
        and its socket with it), ``run()`` ends within 2 s after it, a second
        ``close()`` also returns, and no data is delivered 0.2 s after."""
        rec, conn, run = direct.recorder, direct.connection, direct.run
        await self._trades_for_every_symbol(rec)
        with anyio.move_on_after(_CLOSE_LIMIT_S) as scope:
            await conn.close()
        assert not scope.cancelled_caught, (
            f"close() did not return within {_CLOSE_LIMIT_S} s (the hub gives up there)"
        )
        with anyio.move_on_after(_CLOSE_LIMIT_S):
            await run.ended.wait()
        assert run.ended.is_set(), f"run() still reads {_CLOSE_LIMIT_S} s after close()"
        with anyio.move_on_after(_CLOSE_LIMIT_S) as scope:
            await conn.close()
        assert not scope.cancelled_caught, "a second close() did not return (not idempotent)"
        mark = len(rec.events)
        await anyio.sleep(0.2)
        assert not _data_after(rec.events, mark), "data delivered after close()"

    async def test_probe_is_answered_and_counts_as_activity(self, direct: DirectSession) -> None:
        """On a link with no subscriptions left, ``probe()`` makes the venue answer and
        the answer moves ``health().last_activity_ns``: within ``stale_after_ms`` (the
        hub itself waits half that before it recycles the link)."""
        rec, conn = direct.recorder, direct.connection
        await self._trades_for_every_symbol(rec)
        await conn.unsubscribe(list(self.symbols))
        await anyio.sleep(0.3)  # what was in flight before the unsubscribe
        before = conn.health().last_activity_ns
        asked = time.monotonic_ns()
        await conn.probe()
        limit = self.stale_after_ms / 1000
        with anyio.move_on_after(limit):
            # health() has no change event to wait on: poll it
            while conn.health().last_activity_ns <= max(before, asked):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        moved = conn.health().last_activity_ns
        assert moved > max(before, asked), (
            f"no answer to probe() within {limit} s, or health().last_activity_ns does "
            f"not move ({before} -> {moved}): probe() must send the protocol's heartbeat or "
            "test request, and every byte received must update last_activity_ns"
        )

    # -- liveness through the hub -----------------------------------------------------
    async def test_quiet_link_is_probed_and_kept(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """With every symbol unsubscribed the market is quiet but the link is alive: for
        4 x ``stale_after_ms`` the hub probes it, the venue answers, and it is never
        declared ``stale`` nor recycled."""
        hub, rec, _ = running
        await self._trades_for_every_symbol(rec)
        await hub.unsubscribe_market_data(self.name, list(self.symbols))
        mark = len(rec.events)
        await anyio.sleep(4 * self.stale_after_ms / 1000)
        recycled = _states_after(
            rec.events, mark, ConnectionState.STALE, ConnectionState.RECONNECTING
        )
        assert not recycled, (
            "a quiet but live link was recycled: "
            f"{[(e.state, e.reason) for e in recycled[:2]]}; probe() must be answered "
            "and every byte received must update health().last_activity_ns"
        )
        assert hub.connection_status() == {self.name: True}

    # -- bounded reads --------------------------------------------------------------------
    async def test_oversized_frame_is_refused_within_the_bound(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """A frame over the plugin's read bound (the handle's optional
        ``send_oversized()``: it would decode as a trade the simulator never records)
        is counted as malformed or ends the session, the trade in it is never
        delivered, and the feed continues. Timing: each step within ``timeout``."""
        hub, rec, sim = running
        send = getattr(sim, "send_oversized", None)
        if send is None:
            pytest.skip("the SimulatorHandle has no send_oversized(): bounded reads not checked")
        await self._trades_for_every_symbol(rec)
        before = hub.event_processor().get_stats()
        mark = len(rec.events)
        await send()

        def refused() -> bool:
            now = hub.event_processor().get_stats()
            return now.malformed_frames > before.malformed_frames or bool(
                _states_after(rec.events, mark, ConnectionState.RECONNECTING)
            )

        await rec.wait_for(refused, self.timeout, "the oversized frame to be refused")
        await self._trades_for_every_symbol(rec, after=len(rec.events))
        for sym in self.symbols:
            sent = set(sim.sent_trades(sym))
            foreign = [
                (t.price, t.size, t.side)
                for t in rec.events[mark:]
                if isinstance(t, Trade)
                and t.symbol == sym
                and (t.price, t.size, t.side) not in sent
            ]
            assert not foreign, f"{sym}: delivered trades the simulator never sent: {foreign[:2]}"

    # -- back-pressure --------------------------------------------------------------------
    async def test_block_stream_pauses_the_reader_and_loses_nothing(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """A consumer of an ``overflow="block"`` stream (maxsize 5) stops reading: once
        the stream is full the reader pauses (after 0.1 s for what it had already read,
        in the next ``hold`` = min(0.3 s, ``stale_after_ms``/3) at most a quarter of the
        ticks the feed delivers in a ``hold``, averaged over four before, which must be
        at least 12);
        when the consumer drains it, the reader resumes, nothing was dropped, every trade
        is still exactly what the simulator sent, and the link was not recycled."""
        hub, rec, sim = running
        await self._trades_for_every_symbol(rec)
        hold = max(0.1, min(0.3, self.stale_after_ms / 3000))
        # the feed's pace, over four holds (a loaded machine delivers unevenly): what
        # arrives in one hold while nothing blocks
        start = len(rec.events)
        await anyio.sleep(4 * hold)
        flowing = len(_data_after(rec.events, start)) // 4
        assert flowing >= 12, (
            f"only {flowing} ticks a {hold} s on average: run the simulator faster for this case"
        )
        mark = len(rec.events)
        stream = hub.bus.stream(Trade, maxsize=5, overflow="block")
        try:
            await rec.wait_for(lambda: hub.bus.backpressured, self.timeout, "the stream to fill")
            await anyio.sleep(0.1)  # what the reader had already read when it filled
            paused = len(rec.events)
            await anyio.sleep(hold)
            leaked = len(_data_after(rec.events, paused))
            assert leaked <= max(2, flowing // 4), (
                f"{leaked} ticks in {hold} s while a block stream was full (the feed "
                f"delivers about {flowing}): when sink.backpressured, "
                "await wait_for_capacity(sink) before reading more"
            )
            got = []
            while (tick := stream.get_nowait()) is not None:
                got.append(tick)
        finally:
            stream.close()
        await self._trades_for_every_symbol(rec, after=len(rec.events))  # reading again
        assert stream.dropped == 0
        since = [t for t in rec.events[mark:] if isinstance(t, Trade)]
        assert got == since[: len(got)]
        for sym in self.symbols:
            vals = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
            assert _is_subsequence(vals, sim.sent_trades(sym)), (
                f"{sym}: trades were lost or changed while the reader was paused"
            )
        recycled = _states_after(
            rec.events, mark, ConnectionState.STALE, ConnectionState.RECONNECTING
        )
        assert not recycled, f"the pause recycled the link: {[e.reason for e in recycled]}"

    # -- failover -------------------------------------------------------------------------
    async def test_fails_over_to_a_backup_endpoint(
        self, simulator: SimulatorHandle, plugin: object
    ) -> None:
        """The primary endpoint refuses connections (a port on the simulator's host
        where nothing listens), the backup is the simulator: the hub tries the primary
        first, then connects to the backup (``connect()`` must dial the endpoint it is
        given, not ``config.endpoint``) and trades flow. Timing: within ``timeout``."""
        host = endpoint_host(simulator.endpoint)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as blocker:
            blocker.bind((host, 0))  # bound and never listening: connections are refused
            primary = self.unreachable_endpoint(simulator.endpoint, blocker.getsockname()[1])
            config = self._config(primary, backup_endpoints=[simulator.endpoint])
            try:
                async with self._hub(plugin, config) as (_hub, rec):
                    await self._trades_for_every_symbol(rec)
            except (TimeoutError, HubError):
                pytest.fail(
                    f"never connected through the backup within {self.timeout} s: does "
                    "connect(endpoint) dial the endpoint it is given?"
                )
        connecting = [e for e in rec.of(ConnectionStateChanged) if e.state == "connecting"]
        assert connecting[0].endpoint == redact_endpoint(primary), "the primary is tried first"
        up = next(e for e in rec.of(ConnectionStateChanged) if e.state == "connected")
        assert up.endpoint == redact_endpoint(simulator.endpoint)
        assert ConnectionState.RECONNECTING in rec.states()

    # -- refusals (optional faults of the handle) -------------------------------------------
    async def test_refused_symbol_keeps_the_others(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """A symbol the venue refuses (the handle's optional ``refuse_symbol(symbol)``)
        makes ``subscribe_market_data`` raise ``SubscriptionError`` naming it (in
        ``refused`` when the plugin can tell); the connection stays up and the other
        symbol keeps flowing (10 trades within ``timeout``)."""
        hub, rec, sim = running
        refuse = getattr(sim, "refuse_symbol", None)
        if refuse is None:
            pytest.skip("the SimulatorHandle has no refuse_symbol(): refusals not checked")
        await self._trades_for_every_symbol(rec)
        gone, kept = self.symbols[0], self.symbols[1]
        await hub.unsubscribe_market_data(self.name, [gone])
        await refuse(gone)
        await anyio.sleep(0.2)  # anything in flight before the unsubscribe lands
        mark = len(rec.events)
        with pytest.raises(SubscriptionError) as err:
            with anyio.fail_after(self.timeout):
                await hub.subscribe_market_data(self.name, [gone])
        assert gone in str(err.value), f"the error does not name {gone}: {err.value}"
        if err.value.refused:
            assert set(err.value.refused) == {gone}, f"refused: {err.value.refused}"
        await rec.wait_for(
            lambda: (
                sum(1 for t in rec.events[mark:] if isinstance(t, Trade) and t.symbol == kept) >= 10
            ),
            self.timeout,
            f"10 more trades of {kept}",
        )
        assert not [t for t in rec.events[mark:] if isinstance(t, Trade) and t.symbol == gone]
        assert not _states_after(rec.events, mark, ConnectionState.RECONNECTING)
        assert hub.connection_status() == {self.name: True}

    async def test_refused_credentials_stop_without_retrying(
        self, running: tuple[ExchangeHub, EventRecorder, SimulatorHandle]
    ) -> None:
        """After the venue starts refusing our credentials (the handle's optional
        ``refuse_credentials(True)``) and drops the link, the one reconnect attempt is
        refused: ``auth_failed``, then no further attempt for 0.5 s (a retry loop at
        the suite's 50-200 ms backoff would show several), and the blind window is
        closed by a Gap."""
        hub, rec, sim = running
        refuse = getattr(sim, "refuse_credentials", None)
        if refuse is None:
            pytest.skip("the SimulatorHandle has no refuse_credentials(): refusals not checked")
        await self._trades_for_every_symbol(rec)
        mark = len(rec.events)
        await refuse(True)
        try:
            await sim.drop_connections()
            await rec.wait_for(
                lambda: bool(_states_after(rec.events, mark, ConnectionState.AUTH_FAILED)),
                self.timeout,
                "auth_failed: raise AuthenticationError when the venue refuses the logon",
            )
            await anyio.sleep(0.5)
        finally:
            await refuse(False)
        attempts = _states_after(rec.events, mark, ConnectionState.CONNECTING)
        assert len(attempts) == 1, f"{len(attempts)} attempts after a refusal: never retry it"
        assert rec.states()[-1] == ConnectionState.AUTH_FAILED
        assert hub.connection_status() == {self.name: False}
        gaps = [e for e in rec.events[mark:] if isinstance(e, Gap) and not e.symbol]
        assert gaps, "the blind window must end with a Gap when the connection stops for good"
        assert_gap_spans_the_silence(rec.events, gaps[0])
