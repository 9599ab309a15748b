"""``ExchangeHub``: the object applications hold.

bus = TypedEventBus()
async with ExchangeHub(bus) as hub:
    await hub.connect_exchange(ExchangeId.NINJATRADER, ExchangeConfig.ninjatrader("127.0.0.1:7496"))
    await hub.subscribe_market_data(ExchangeId.NINJATRADER, ["ES"])
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from hub_core.book import BookKeeper, OrderBook
from hub_core.bus import Subscription, TypedEventBus
from hub_core.config import ExchangeConfig, HubConfig, SinkConfig, load_config, options_error
from hub_core.contracts import ConnectionFactory
from hub_core.errors import ConfigError, HubError
from hub_core.ids import ExchangeId
from hub_core.processor import EventProcessor
from hub_core.registry import ExchangeRegistry
from hub_core.status import ConnectionDetails, details_of
from hub_core.supervisor import ConnectionManager, ConnectionSupervisor
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Gap

if TYPE_CHECKING:
    from hub_core.recording import Recorder
    from hub_core.replay import Progress, ReplayStats
    from hub_core.sinks import SinkFactory, SinkRunner, SinkStatus

log = logging.getLogger("hub_core.hub")


_gc_tuned = False


def tune_gc() -> None:
    """Move start-up objects out of the collector's way and collect young objects less often.

    Ticks are short-lived container objects; with the default gen-0 threshold
    (700) a busy feed triggers a collection every few hundred ticks. Freezing
    what exists after start-up keeps those collections small. Once per process.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 50_000), max(gen1, 20), max(gen2, 100))


class ExchangeHub:
    """Supervises exchange connections and publishes what they receive to a bus."""

    def __init__(
        self,
        bus: TypedEventBus | None = None,
        *,
        registry: ExchangeRegistry | None = None,
        config: HubConfig | None = None,
        tune_gc: bool | None = None,
    ) -> None:
        """``tune_gc=True`` applies the hub's garbage-collector tuning on start (the
        ``hub`` command does); by default an embedded hub leaves the application's
        collector alone unless ``[hub] gc_freeze = true`` asks for it."""
        self.bus = bus if bus is not None else TypedEventBus()
        self.config = config or HubConfig()
        wanted = self.config.hub.gc_freeze
        self._tune_gc = bool(tune_gc) if wanted is None else wanted
        if registry is None:
            registry = ExchangeRegistry(
                allow=self.config.hub.plugins, deny=self.config.hub.disabled_plugins
            )
            registry.discover()
        self.registry = registry
        self._processor = EventProcessor(self.bus)
        self._tg: TaskGroup | None = None
        self._manager: ConnectionManager | None = None
        self._configs: dict[str, ExchangeConfig] = {}
        self._books: dict[tuple[str, str], tuple[BookKeeper, list[Subscription]]] = {}
        self.recorder: Recorder | None = None
        """The recorder started by ``record()``; None when not recording."""
        self._sinks: dict[str, tuple[SinkRunner, anyio.CancelScope, anyio.Event]] = {}

    @classmethod
    def from_toml(
        cls,
        path: str | Path,
        bus: TypedEventBus | None = None,
        *,
        registry: ExchangeRegistry | None = None,
    ) -> ExchangeHub:
        """A hub for the ``[exchanges.*]`` of a TOML file; they connect on ``async with``."""
        config = load_config(path)
        hub = cls(bus, registry=registry, config=config)
        for name, ex in config.exchanges.items():
            factory = hub.registry.factory(ex.protocol, exchange=name)
            _validate_options(factory, ex, name)
        for name, sc in config.sinks.items():
            hub._sink_factory(name, sc)
        return hub

    # -- lifecycle ------------------------------------------------------------------
    async def __aenter__(self) -> ExchangeHub:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._manager = ConnectionManager(self._tg)
        try:
            for name, sc in self.config.sinks.items():  # first: they miss no tick
                await self.add_sink(sc.model_copy(update={"name": name}))
            for name, ex in self.config.exchanges.items():
                await self.connect_exchange(ExchangeId(name, ex.protocol), ex, wait=False)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        if self._tune_gc:
            tune_gc()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, self._tg = self._tg, None
        if tg is None:
            return None
        try:
            if self._manager is not None:
                with anyio.CancelScope(shield=True):
                    await self._manager.stop_all()
                    await self._close_sinks()
        finally:
            tg.cancel_scope.cancel()
            # nothing feeds the bus any more: `async for` over its streams ends once
            # what is buffered has been read
            for buf in self.bus.streams():
                buf.close()
            self.stop_recording()
            try:
                result = await tg.__aexit__(exc_type, exc, tb)
            except BaseExceptionGroup as group:
                # the task group wraps what the user's block raised; hand back the
                # original, so `except SubscriptionError:` around the block works
                leaves = _leaves(group)
                if exc is not None and any(e is exc for e in leaves):
                    raise exc.with_traceback(tb) from None
                if len(leaves) == 1:
                    raise leaves[0] from None
                raise
        return result

    def _require_started(self) -> ConnectionManager:
        if self._manager is None:
            raise HubError("the hub is not running", hint="use it inside `async with hub:`")
        return self._manager

    # -- sinks ----------------------------------------------------------------------
    def _sink_factory(self, name: str, config: SinkConfig) -> SinkFactory:
        from pydantic import ValidationError

        factory = self.registry.sink_factory(config.kind, sink=name)
        try:
            factory.validate_options(config)
        except ValidationError as exc:
            hint = f"see the {config.kind} sink's options in its plugin's README"
            raise options_error(exc, f"sinks.{name}.options", hint) from None
        return factory

    async def add_sink(self, config: SinkConfig) -> SinkRunner:
        """Start a sink (``[sinks.NAME]`` tables start on ``async with``): from now on it
        is handed every tick of this hub's connections (or of ``config.exchanges``)."""
        from hub_core.sinks import SinkRunner

        if self._tg is None:
            raise HubError("the hub is not running", hint="use it inside `async with hub:`")
        name = config.name or config.kind
        if name in self._sinks:
            raise ConfigError(f"a sink named {name!r} is already running")
        config = config.model_copy(update={"name": name})
        factory = self._sink_factory(name, config)
        runner = SinkRunner(config, factory.create(config), relayed=self._processor.relays)
        runner.attach(self.bus)
        scope = anyio.CancelScope()
        done = anyio.Event()

        async def run() -> None:
            try:
                with scope:
                    await runner.run_until_closed()
            finally:
                done.set()

        self._sinks[name] = (runner, scope, done)
        self._tg.start_soon(run)
        return runner

    def sink_status(self) -> dict[str, SinkStatus]:
        """Each running sink's state and counters."""
        return {name: entry[0].status() for name, entry in self._sinks.items()}

    async def _close_sinks(self) -> None:
        from hub_core.sinks import CLOSE_FLUSH_S

        sinks, self._sinks = self._sinks, {}
        for runner, _, _ in sinks.values():
            await runner.close()
        with anyio.move_on_after(CLOSE_FLUSH_S):
            for _, _, done in sinks.values():
                await done.wait()
        for _runner, scope, done in sinks.values():
            if not done.is_set():
                scope.cancel()  # still reconnecting, or a write that hangs
                await done.wait()

    # -- recording ------------------------------------------------------------------
    def record(self, directory: str | Path) -> Recorder:
        """Write every tick and ``Gap`` published from now on to DBN v3 files under
        ``directory`` (``<exchange>/<YYYYMMDD-HH>.dbn.zst``; see sdk-docs/dbn.md); they
        are closed when the hub stops or on ``stop_recording()``. Raises ``OSError``
        if ``directory`` cannot be created or written."""
        from hub_core.recording import Recorder

        if self.recorder is not None:
            raise HubError("the hub is already recording", hint="call stop_recording() first")
        recorder = Recorder(directory)
        recorder.attach(self.bus, every_exchange=False)
        for sink in self._processor.sinks.values():
            recorder.tap(sink)
        self.recorder = recorder
        return recorder

    def stop_recording(self) -> None:
        """Write what is queued and close the files of ``record()`` (no-op when not recording)."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()

    async def replay(
        self,
        paths: str | Path | Iterable[str | Path],
        speed: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> ReplayStats:
        """Publish the ticks and ``Gap``s of DBN files on this hub's bus, as their
        connections published them live (same types, exchange names, symbols,
        ``ts_recv``); returns when every record is published.

        ``paths``: files or directories (every ``*.dbn`` / ``*.dbn.zst`` in them),
        merged across exchanges by ``ts_recv``. ``speed`` None is as fast as possible,
        else X times the recorded pace. Files of ``record()`` and Databento's own
        (zstd or plain, DBN v1-v3) replay. ``progress(bytes_read, bytes_total,
        records)`` is called as it goes. Raises ``ReplayError`` (one line: missing,
        unreadable, not DBN, nothing to replay). Needs no ``async with``.
        """
        from hub_core.replay import Replayer

        if self._tune_gc:
            tune_gc()
        items = [paths] if isinstance(paths, str | Path) else list(paths)
        return await Replayer(self._processor, items, speed=speed, progress=progress).run()

    # -- connections ------------------------------------------------------------------
    async def connect_exchange(
        self,
        exchange_id: str,
        config: ExchangeConfig,
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Start supervising a connection; with ``wait``, return once it is connected.

        Raises the connection's error if it fails for good while waiting
        (``AuthenticationError``, ``ConnectionDead``), or ``TimeoutError``
        after ``timeout`` seconds (the supervisor keeps trying).
        """
        manager = self._require_started()
        name = str(exchange_id)
        factory = self.registry.factory(config.protocol, exchange=name)
        _validate_options(factory, config, name)
        if not config.name:
            config = config.model_copy(update={"name": name})
        self._configs[name] = config
        sink = self._processor.sink_for(name)
        if self.recorder is not None:
            self.recorder.tap(sink)  # DBN from this connection is recorded as it came
        sup = ConnectionSupervisor(name, config, factory, sink, pacer=manager.pacer)
        manager.start(sup)
        if wait:
            with anyio.fail_after(timeout):
                await sup.wait_settled()
            if sup.error is not None and sup.dead:
                raise sup.error

    async def disconnect_exchange(self, exchange_id: str) -> None:
        """Close one connection (publishes ``ConnectionStateChanged`` closed)."""
        await self._require_started().stop(str(exchange_id))

    async def subscribe_market_data(self, exchange_id: str, symbols: Iterable[str]) -> None:
        """Subscribe ``symbols``; kept across reconnects. Raises ``SubscriptionError``
        naming any symbol the venue refused (the others stay subscribed)."""
        await self._supervisor(exchange_id).subscribe(list(symbols))

    async def unsubscribe_market_data(self, exchange_id: str, symbols: Iterable[str]) -> None:
        """Stop ``symbols``; they are not resubscribed after a reconnect."""
        await self._supervisor(exchange_id).unsubscribe(list(symbols))

    def _supervisor(self, exchange_id: str) -> ConnectionSupervisor:
        sup = self._require_started().get(str(exchange_id))
        if sup is None:
            known = ", ".join(sorted(self.connections())) or "none"
            raise HubError(
                f"no connection named {str(exchange_id)!r} (connected: {known})",
                hint="call connect_exchange() first",
            )
        return sup

    # -- views ----------------------------------------------------------------------
    def connection_status(self) -> dict[ExchangeId, bool]:
        """``{exchange: healthy}`` for every supervised connection."""
        if self._manager is None:
            return {}
        return {
            ExchangeId(name, self._configs[name].protocol): ok
            for name, ok in self._manager.status().items()
        }

    def connection_details(self) -> dict[ExchangeId, ConnectionDetails]:
        """Every connection's state, endpoint (redacted), per-symbol state, last message
        time, latency and counters, as of this call (``.as_dict()`` for plain data)."""
        if self._manager is None:
            return {}
        per_exchange = self._processor.get_stats().per_exchange
        return {
            ExchangeId(name, self._configs[name].protocol): details_of(sup, per_exchange.get(name))
            for name, sup in sorted(self._manager.supervisors.items())
        }

    def connections(self) -> dict[str, ConnectionSupervisor]:
        """Supervisors by name (state, reason, endpoint, symbols, error)."""
        return {} if self._manager is None else dict(self._manager.supervisors)

    def all_dead(self) -> bool:
        """True when every connection has given up (``hub run`` exits non-zero)."""
        return self._manager is not None and self._manager.all_dead()

    def book(self, exchange: str, symbol: str) -> OrderBook:
        """The hub's order book of ``symbol`` on ``exchange``: read-only, kept current.

        The first call starts keeping it (later calls return the same object): the
        hub's own bus subscriber applies that exchange's ``BookSnapshot``,
        ``BookUpdate`` and ``BookClear`` ticks of the symbol as they are published, so
        a slow strategy cannot leave it behind. A snapshot or a ``BookClear`` starts it
        anew; a ``Gap`` makes it ``stale`` until then, and so does starting: ask for
        it before subscribing the symbol, or it waits for the venue's next snapshot.
        When an integrity check fails (crossed, locked, negative size) it turns
        ``valid=False`` with the ``reason``, logged and counted, until the next
        snapshot. Order-level feeds (``order_id`` set) are aggregated into levels.
        See sdk-docs/books.md.
        """
        name = str(exchange)
        key = (name, symbol)
        kept = self._books.get(key)
        if kept is None:
            keeper = BookKeeper(name, symbol)
            bus = self.bus
            subs = [
                bus.subscribe(BookSnapshot, keeper.on_snapshot, exchange=name, symbol=symbol),
                bus.subscribe(BookUpdate, keeper.on_update, exchange=name, symbol=symbol),
                bus.subscribe(BookClear, keeper.on_clear, exchange=name, symbol=symbol),
                # a Gap for the whole connection has symbol "": filter on the exchange only
                bus.subscribe(Gap, keeper.on_gap, exchange=name),
            ]
            kept = (keeper, subs)
            self._books[key] = kept
        return kept[0].book

    def drop_book(self, exchange: str, symbol: str) -> None:
        """Stop keeping the book of ``symbol`` on ``exchange`` (no-op when not kept)."""
        kept = self._books.pop((str(exchange), symbol), None)
        if kept is not None:
            for sub in kept[1]:
                sub.unsubscribe()

    def event_processor(self) -> EventProcessor:
        """Stats: ``hub.event_processor().get_stats()``."""
        return self._processor


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


def check_endpoints(
    factory: ConnectionFactory, config: ExchangeConfig, where: str, exchange: str = ""
) -> None:
    """The plugin's ``check_endpoint`` for the endpoint and each backup, as a ``ConfigError``
    naming the TOML key."""
    for key, endpoint in [("endpoint", config.endpoint)] + [
        (f"backup_endpoints[{i}]", e) for i, e in enumerate(config.backup_endpoints)
    ]:
        try:
            factory.check_endpoint(endpoint)
        except ValueError as exc:
            raise ConfigError(
                f"{where}.{key}: {exc}",
                exchange=exchange,
                hint=f"see the {factory.protocol} plugin's README for the endpoint form",
            ) from None


def _validate_options(factory: object, config: ExchangeConfig, name: str) -> None:
    from pydantic import ValidationError

    assert isinstance(factory, ConnectionFactory)
    check_endpoints(factory, config, f"exchanges.{name}", exchange=name)
    try:
        factory.validate_options(config)
    except ValidationError as exc:
        hint = f"see the {factory.protocol} plugin's README for its options"
        raise options_error(exc, f"exchanges.{name}.options", hint, exchange=name) from None
