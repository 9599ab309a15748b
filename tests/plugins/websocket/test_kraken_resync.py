"""A Kraken book whose resync the venue refuses: never frozen without a word.

A checksum break drops the book and resubscribes it; the simulator's
``refuse_resyncs`` fault refuses that resubscription. Each refusal publishes a
``Gap`` for the book and retries with backoff; after ``RESYNC_REFUSALS_TO_ERROR``
refusals a per-symbol error goes through the sink (``sink.symbol_error``: counted in
``venue_errors`` and shown in the supervisor's ``symbol_states()``).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from hub_core import BookSnapshot, ConnectionStateChanged, Gap
from hub_core.testing import EventRecorder
from hub_plugin_websocket.dialects.kraken import RESYNC_REFUSALS_TO_ERROR
from hub_plugin_websocket.simulators import KrakenSimulator
from tests.plugins.websocket.conftest import rebuilt_book, running_venue

pytestmark = pytest.mark.anyio

SYMBOL = "BTC/USD"


def _since(rec: EventRecorder, mark: int, kind: type) -> list[Any]:
    return [e for e in rec.events[mark:] if isinstance(e, kind) and e.symbol == SYMBOL]


async def test_a_refused_resync_is_retried_until_the_venue_accepts(transport: str) -> None:
    async with (
        KrakenSimulator([SYMBOL], rate=100, seed=7, refuse_resyncs=2) as sim,
        running_venue("kraken", sim.endpoint, transport, [SYMBOL], ["book"]) as (hub, rec),
    ):
        await rec.wait_for(lambda: bool(rec.of(BookSnapshot)), 10, "a synced book")
        mark = len(rec.events)
        await sim.skip_sequence()  # a wrong checksum: the book is resubscribed
        await rec.wait_for(lambda: sim.resyncs_refused == 2, 20, "two refusals")
        await rec.wait_for(lambda: bool(_since(rec, mark, BookSnapshot)), 20, "a new book")
        gaps = _since(rec, mark, Gap)
        # the checksum break, then one per refusal; all before the new snapshot
        assert len(gaps) == 3
        assert "checksum" in gaps[0].reason
        assert all("refused" in g.reason for g in gaps[1:])
        first_snapshot = rec.events.index(_since(rec, mark, BookSnapshot)[0])
        assert all(rec.events.index(g) < first_snapshot for g in gaps)
        # each Gap starts where the one before it ended: the blind time is all covered
        assert all(b.start_ts == a.end_ts for a, b in itertools.pairwise(gaps))
        sink = hub.event_processor().sink_for("kraken")
        assert sink.venue_errors == 0  # fewer refusals than the error threshold
        sim.rate = 0
        await rec.wait_for(
            lambda: rebuilt_book(rec, SYMBOL, mark) == _venue_book(sim), 10, "the venue's book"
        )


async def test_a_book_refused_again_and_again_is_a_per_symbol_error(transport: str) -> None:
    async with (
        KrakenSimulator([SYMBOL], rate=100, seed=8, refuse_resyncs=-1) as sim,
        running_venue("kraken", sim.endpoint, transport, [SYMBOL], ["book"]) as (hub, rec),
    ):
        await rec.wait_for(lambda: bool(rec.of(BookSnapshot)), 10, "a synced book")
        mark = len(rec.events)
        await sim.skip_sequence()
        sink = hub.event_processor().sink_for("kraken")
        await rec.wait_for(lambda: sink.venue_errors >= 1, 30, "the per-symbol error")
        assert sim.resyncs_refused >= RESYNC_REFUSALS_TO_ERROR
        assert SYMBOL in sink.last_error and "refused" in sink.last_error
        # shown per symbol by the hub: its state, and a state event saying so
        sup = hub.connections()["kraken"]
        await rec.wait_for(
            lambda: sup.symbol_states().get(SYMBOL, "").startswith("error:"),
            10,
            "the symbol's error state",
        )
        await rec.wait_for(
            lambda: any(
                e.reason.startswith("symbol errors:") and SYMBOL in e.reason
                for e in rec.of(ConnectionStateChanged)
            ),
            10,
            "a state event naming the symbol in error",
        )
        assert len(_since(rec, mark, Gap)) >= 1 + RESYNC_REFUSALS_TO_ERROR
        assert not _since(rec, mark, BookSnapshot)
        assert sim.connections_accepted == 1


def _venue_book(sim: KrakenSimulator) -> dict[Any, int]:
    bids, asks = sim.book(SYMBOL, 10)
    return {("B", p): q for p, q in bids.items()} | {("A", p): q for p, q in asks.items()}
