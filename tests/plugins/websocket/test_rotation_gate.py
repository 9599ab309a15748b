"""``RotationGate`` without sockets: two sessions' ticks in, one stream out.

The old session's and the new session's dialects publish through the gate's
two private sinks; a subscriber on the hub's bus must see each trade once, in
order, whichever session is ahead, a ``Gap`` where the streams cannot be
aligned, and each book switched at the new session's snapshot.
"""

from __future__ import annotations

from hub_core import BookSnapshot, BookUpdate, Gap, Trade, TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.testing import EventRecorder
from hub_plugin_websocket.rotation import RotationGate

SYM = "BTCUSDT"


def setup() -> tuple[RotationGate, EventRecorder, ConnectionSink]:
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    real = EventProcessor(bus).sink_for("binance")
    return RotationGate(real), rec, real


def trade(sink: ConnectionSink, trade_id: int, ts_recv: int = 1) -> None:
    # the same trade on both sessions differs only in when it was received
    sink.trade(SYM, 60_000 * 10**9 + trade_id, 10**9, "B", 1_700_000 + trade_id, ts_recv, trade_id)


def ids(rec: EventRecorder) -> list[int]:
    return [t.sequence for t in rec.of(Trade)]


def test_old_session_ahead() -> None:
    gate, rec, _ = setup()
    for i in range(1, 6):
        trade(gate.old_sink, i)
    gate.start_overlap()
    assert not gate.settled(0.0)  # the old session delivered; the new one has not yet
    for i in range(3, 9):
        trade(gate.new_sink, i, ts_recv=2)
    assert gate.settled(0.0)
    trade(gate.old_sink, 6)  # late on the old session: dropped, the new one had it
    gate.finish()
    assert ids(rec) == list(range(1, 9))
    assert gate.duplicates == 3 and gate.dropped_old == 1 and not rec.of(Gap)


def test_new_session_ahead() -> None:
    gate, rec, _ = setup()
    trade(gate.old_sink, 1)
    gate.start_overlap()
    for i in range(2, 7):  # held: the old session has not delivered 2 yet
        trade(gate.new_sink, i, ts_recv=2)
    assert ids(rec) == [1]
    trade(gate.old_sink, 2)  # now it has: the new session's 3..6 follow it
    assert ids(rec) == [1, 2, 3, 4, 5, 6]
    for i in range(3, 5):
        trade(gate.old_sink, i)  # the old session catching up: dropped
    trade(gate.new_sink, 7, ts_recv=2)
    assert gate.settled(0.0)
    gate.finish()
    assert ids(rec) == list(range(1, 8))


def test_a_stream_that_cannot_be_aligned_is_switched_with_a_gap() -> None:
    gate, rec, real = setup()
    trade(gate.old_sink, 1)
    gate.start_overlap()
    for i in (5, 6):  # 2..4 never come on the old session
        trade(gate.new_sink, i, ts_recv=2)
    assert not gate.settled(0.0)
    gate.finish()
    (gap,) = rec.of(Gap)
    assert gap.symbol == SYM and "rotation" in gap.reason
    assert ids(rec) == [1, 5, 6]
    assert real.gaps == 1


def test_the_book_switches_at_the_new_snapshot() -> None:
    gate, rec, _ = setup()
    gate.old_sink.book_snapshot(SYM, ((100, 1),), ((101, 1),), 1, 1, 10)
    gate.old_sink.book_update(SYM, "B", 100, 2, 1, 1, "M", 11)
    gate.start_overlap()
    assert not gate.settled(0.0)  # the old session's book moved: wait for the new one
    gate.new_sink.book_snapshot(SYM, ((100, 2),), ((101, 1),), 2, 2, 11)
    gate.old_sink.book_update(SYM, "B", 99, 5, 1, 1, "M", 12)  # the old one's: dropped
    gate.new_sink.book_update(SYM, "B", 99, 5, 2, 2, "M", 12)
    assert gate.settled(0.0)
    gate.finish()
    seqs = [
        (type(e).__name__, e.sequence)
        for e in rec.events
        if isinstance(e, (BookSnapshot, BookUpdate))
    ]
    assert seqs == [
        ("BookSnapshot", 10),
        ("BookUpdate", 11),
        ("BookSnapshot", 11),
        ("BookUpdate", 12),
    ]


def test_an_unsubscribed_symbol_no_longer_holds_the_switch() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    trade(gate.old_sink, 1)
    assert not gate.settled(0.0)
    gate.forget({SYM})
    assert gate.settled(0.0)
    trade(gate.old_sink, 2)  # in flight after the unsubscribe: dropped
    gate.finish()
    assert ids(rec) == [1] and not rec.of(Gap)


def test_the_overlap_lasts_at_least_its_minimum() -> None:
    gate, _, _ = setup()
    assert not gate.settled(0.0)  # the new session has not subscribed yet
    gate.start_overlap()
    assert not gate.settled(60.0)
    assert gate.settled(0.0)


def test_after_finish_the_old_session_is_silenced() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    gate.finish()
    trade(gate.old_sink, 1)
    gate.old_sink.book_update(SYM, "B", 100, 1, 1, 1, "M", 1)
    assert not rec.events or all(not isinstance(e, (Trade, BookUpdate)) for e in rec.events)
