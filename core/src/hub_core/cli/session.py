"""The running part of ``hub run`` and ``hub demo``.

One task group holds everything: (for the demo) the simulators, the hub's
connections, the output (live view, plain status or JSON lines), the metrics
refresher and the signal watcher. The session ends on ``--duration``,
Ctrl-C / SIGTERM, a closed stdout pipe, or when every connection is dead;
only the last is a failure.
"""

from __future__ import annotations

import enum
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from hub_core.hub import ExchangeHub
from hub_core.redact import one_line
from hub_core.ticks import ConnectionState, ConnectionStateChanged

log = logging.getLogger("hub_core.cli")

DEAD_POLL_S = 0.5
"""Backstop poll of ``hub.all_dead()``; the state-change handler usually sees it first."""


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``hub`` command."""

    OK = 0
    """Clean stop: --duration elapsed, Ctrl-C / SIGTERM, or stdout closed by its reader."""
    FATAL = 1
    """A fatal error while running: every connection dead, a simulator or port failure."""
    CONFIG = 2
    """Invalid command line or configuration (nothing was started)."""


async def watch_signals(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    """Ctrl-C / SIGTERM set ``stop`` (a clean stop); a second one cancels ``scope`` at once."""
    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        with receiver as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if stop.is_set():
                    log.warning("second %s: stopping now", name)
                    scope.cancel()
                    return
                log.info("%s: stopping", name)
                stop.set()
    except NotImplementedError:
        # no signal handlers on this event loop (Windows): Ctrl-C arrives as
        # KeyboardInterrupt, which main() treats as a clean stop
        return


class Output(Protocol):
    """What shows the session: the live view, the plain status or the JSON lines."""

    async def run(self) -> None: ...

    def close(self) -> None: ...


class Outputs:
    """Several outputs run side by side (``--jsonl`` and ``--svg``)."""

    def __init__(self, *outputs: Output) -> None:
        self.outputs = outputs

    async def run(self) -> None:
        """Run every output until cancelled."""
        async with anyio.create_task_group() as tg:
            for output in self.outputs:
                tg.start_soon(output.run)

    def close(self) -> None:
        """Close every output, in order."""
        for output in self.outputs:
            output.close()


@dataclass
class SessionOptions:
    """Command-line choices shared by ``hub run`` and ``hub demo``."""

    title: str
    jsonl: bool = False
    duration: float | None = None
    metrics_port: int | None = None
    svg: str | None = None
    """Save the live view's last frame as SVG here on exit (``--svg FILE``)."""


class Session:
    """One run of a hub until it is told to stop or cannot go on."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.stop = anyio.Event()
        self.fatal = ""
        """Why the session failed; empty for a clean stop."""

    def _stop_clean(self) -> None:
        self.stop.set()

    def _fail(self, reason: str) -> None:
        if not self.fatal:
            self.fatal = one_line(reason)
        self.stop.set()

    # -- what ends a session ---------------------------------------------------
    def _check_dead(self, hub: ExchangeHub) -> None:
        if hub.all_dead():
            reasons = "; ".join(
                f"{name} ({sup.shown_endpoint}): {sup.reason or sup.state}"
                for name, sup in sorted(hub.connections().items())
            )
            self._fail(f"every connection is dead: {reasons}")

    def _watch_state(self, hub: ExchangeHub) -> Callable[[ConnectionStateChanged], None]:
        def on_state(event: ConnectionStateChanged) -> None:
            if event.state in (ConnectionState.DEAD, ConnectionState.AUTH_FAILED):
                self._check_dead(hub)

        return on_state

    async def _poll_dead(self, hub: ExchangeHub) -> None:
        while not self.stop.is_set():
            await anyio.sleep(DEAD_POLL_S)
            self._check_dead(hub)

    async def _watch_signals(self, tg: TaskGroup) -> None:
        await watch_signals(self.stop, tg.cancel_scope)

    # -- output ------------------------------------------------------------------
    def _make_output(self, hub: ExchangeHub) -> Output:
        svg = self.options.svg
        if not self.options.jsonl and sys.stdout.isatty():
            from hub_core.cli.live_view import LiveView

            view = LiveView(hub, self.options.title, svg=svg)
            view.attach()
            return view
        output: Output
        if self.options.jsonl:
            from hub_core.cli.jsonl import JsonlWriter

            writer = JsonlWriter(sys.stdout.buffer, on_closed=self._stop_clean)
            writer.attach(hub.bus)
            output = writer
        else:
            from hub_core.cli.live_view import PlainStatus

            output = PlainStatus(hub)
        if svg is None:
            return output
        from hub_core.cli.live_view import SvgSnapshot

        # no live view to take the frame from: keep what it would show beside the output
        snapshot = SvgSnapshot(hub, self.options.title, svg)
        snapshot.attach()
        return Outputs(output, snapshot)

    # -- the run -------------------------------------------------------------------
    async def run(self, build: Callable[[TaskGroup], Awaitable[ExchangeHub]]) -> ExitCode:
        """Build the hub (``build`` may start simulators in the task group), run it, stop it."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg, name="hub-signals")
            hub = await build(tg)
            # Subscribe before connecting so the first ConnectionStateChanged is seen.
            output = self._make_output(hub)
            dead_sub = hub.bus.subscribe(ConnectionStateChanged, self._watch_state(hub))
            metrics = None
            try:
                if self.options.metrics_port is not None:
                    from hub_core.cli.metrics import BIND_ADDRESS, HubMetrics

                    metrics = HubMetrics(hub)
                    port = metrics.serve(self.options.metrics_port)
                    print(
                        f"metrics on http://{BIND_ADDRESS}:{port}/metrics",
                        file=sys.stderr,
                        flush=True,
                    )
                    tg.start_soon(metrics.run, name="hub-metrics")
                async with hub:
                    tg.start_soon(output.run, name="hub-output")
                    tg.start_soon(self._poll_dead, hub, name="hub-dead-watch")
                    with anyio.move_on_after(self.options.duration):
                        await self.stop.wait()
                # the hub is closed: its final "closed" state events are in the output now
            finally:
                dead_sub.unsubscribe()
                output.close()
                if metrics is not None:
                    metrics.close()
            tg.cancel_scope.cancel()
        return ExitCode.FATAL if self.fatal else ExitCode.OK


def first_error(exc: BaseException) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def fatal_message(exc: BaseException) -> str:
    """One line for an error that ended the session (exception groups unwrapped)."""
    from hub_core.errors import HubError

    exc = first_error(exc)
    text = str(exc)
    if isinstance(exc, HubError):  # already says what and what to do
        return one_line(text)
    return one_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
