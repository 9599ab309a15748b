"""``hub replay``: DBN files through a hub, with ``--jsonl`` output or a summary.

The progress bar (records, rate, time left) is drawn on stderr only when it
is a terminal; time left is estimated from the bytes read of the files on
disk, the one total known before the end (a zstd file does not say how many
records it holds).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import anyio

from hub_core.bus import TypedEventBus
from hub_core.cli.commands import error
from hub_core.cli.session import ExitCode
from hub_core.hub import ExchangeHub
from hub_core.registry import ExchangeRegistry
from hub_core.replay import Replayer, ReplayError, ReplayStats


class ProgressBar:
    """A rich progress bar on stderr: bytes done of the total, records, records/s."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[records]:,} records"),
            TextColumn("{task.fields[rate]:,.0f}/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: Any = None
        self._started = time.monotonic()

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        self._task = self._progress.add_task("replay", total=None, records=0, rate=0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, done: int, total: int, records: int) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._progress.update(
            self._task, completed=done, total=total, records=records, rate=records / elapsed
        )


def summary(hub: ExchangeHub, stats: ReplayStats, out: TextIO) -> None:
    """What was replayed, one line overall and one per exchange."""
    rate = stats.records / stats.seconds if stats.seconds > 0 else 0.0
    print(
        f"replayed {stats.records} records from {len(stats.files)} file(s), "
        f"{len(stats.exchanges)} exchange(s), in {stats.seconds:.2f} s ({rate:,.0f} records/s)",
        file=out,
    )
    per = hub.event_processor().get_stats().per_exchange
    for name in stats.exchanges:
        ex = per[name]
        print(
            f"  {name}: {ex.trades} trades, {ex.quotes} quotes, {ex.book_updates} book updates, "
            f"{ex.snapshots} snapshots, {ex.book_clears} book clears, {ex.gaps} gaps"
            + (f", {ex.malformed} malformed" if ex.malformed else ""),
            file=out,
        )


def run_replay(paths: list[str], *, speed: float | None, jsonl: bool) -> int:
    """The ``hub replay`` command: returns its exit code."""
    from hub_core.cli.jsonl import JsonlWriter

    hub = ExchangeHub(TypedEventBus(), registry=ExchangeRegistry(), tune_gc=True)
    try:
        replayer = Replayer(hub.event_processor(), [Path(p) for p in paths], speed=speed)
    except ReplayError as exc:  # nothing started: a bad argument
        return error(str(exc), ExitCode.CONFIG)
    scopes: list[anyio.CancelScope] = []  # the replay's, once it runs

    def reader_gone() -> None:  # `hub replay --jsonl | head`: a clean stop
        for scope in scopes:
            scope.cancel()

    writer = None
    if jsonl:
        writer = JsonlWriter(sys.stdout.buffer, on_closed=reader_gone)
        writer.attach(hub.bus)

    async def play() -> None:
        async with anyio.create_task_group() as tg:
            scopes.append(tg.cancel_scope)
            if writer is not None:
                tg.start_soon(writer.run)
            await replayer.run()
            tg.cancel_scope.cancel()

    bar = ProgressBar() if sys.stderr.isatty() else None
    try:
        if bar is not None:
            replayer.progress = bar
            with bar:
                anyio.run(play)
        else:
            anyio.run(play)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
    except ReplayError as exc:
        return error(str(exc), ExitCode.FATAL)
    finally:
        if writer is not None:
            writer.close()
    if not (writer is not None and writer.closed):
        summary(hub, replayer.stats, sys.stderr if jsonl else sys.stdout)
    return int(ExitCode.OK)
