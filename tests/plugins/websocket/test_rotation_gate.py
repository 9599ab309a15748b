"""``RotationGate`` without sockets: two sessions' ticks in, one stream out.

The old session's and the new session's dialects publish through the gate's
two private sinks; a subscriber on the hub's bus must see each trade once, in
order, whichever session is ahead, a ``Gap`` where the streams cannot be
aligned, and each book switched at the new session's snapshot.
"""

from __future__ import annotations

from hub_core import BookSnapshot, BookUpdate, Gap, Quote, Trade, TypedEventBus
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


# -- alignment by identity; id-less streams by a run; a Gap for anything unproven --------------
def quote(sink: ConnectionSink, bid: int, ts_recv: int = 1, sequence: int = 0) -> None:
    """A quote as Kraken's ticker sends it: no venue id (``sequence`` 0) unless given."""
    sink.quote(SYM, bid * 10**9, 10**9, (bid + 1) * 10**9, 10**9, 1, ts_recv, sequence)


def bids(rec: EventRecorder) -> list[int]:
    return [q.bid_price // 10**9 for q in rec.of(Quote)]


def test_id_less_quotes_align_on_a_run_not_on_one_equal_quote() -> None:
    gate, rec, _ = setup()
    for b in (1, 2, 3):
        quote(gate.old_sink, b)
    gate.start_overlap()
    quote(gate.new_sink, 3, ts_recv=2)  # the new session's subscribe-time snapshot
    assert not gate.settled(0.0), "one equal quote proves nothing"
    for b in (4, 5):
        quote(gate.old_sink, b)
    quote(gate.new_sink, 4, ts_recv=2)
    quote(gate.new_sink, 5, ts_recv=2)  # 3, 4, 5 in a row: aligned
    assert gate.settled(0.0)
    quote(gate.new_sink, 6, ts_recv=2)
    gate.finish()
    assert bids(rec) == [1, 2, 3, 4, 5, 6] and not rec.of(Gap)


def test_a_genuine_repeat_of_an_earlier_quote_is_published() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    for b in (7, 8, 9):
        quote(gate.old_sink, b)
    for b in (7, 8, 9):
        quote(gate.new_sink, b, ts_recv=2)
    assert gate.settled(0.0)
    quote(gate.new_sink, 7, ts_recv=2)  # the market went back to 7: a new quote
    quote(gate.old_sink, 7)  # the old session's copy of it: dropped
    gate.finish()
    assert bids(rec) == [7, 8, 9, 7] and not rec.of(Gap)


def test_an_ambiguous_id_less_stream_is_a_gap_and_no_duplicate() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    for b in (1, 2, 1, 2):
        quote(gate.old_sink, b)
    for b in (1, 2):  # matches at two places: no proof of where the new one is
        quote(gate.new_sink, b, ts_recv=2)
    assert not gate.settled(0.0)
    gate.finish()
    (gap,) = rec.of(Gap)
    assert "rotation" in gap.reason and "quotes" in gap.reason
    assert bids(rec) == [1, 2, 1, 2], "the held quotes may repeat published ones: dropped"
    quote(gate.new_sink, 3, ts_recv=2)  # after the switch: published
    assert bids(rec) == [1, 2, 1, 2, 3]


def test_a_new_session_silent_on_a_stream_is_a_gap_not_a_silent_switch() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    trade(gate.old_sink, 1)
    trade(gate.old_sink, 2)
    assert not gate.settled(0.0)
    gate.finish()  # the deadline: the new session delivered nothing on the stream
    (gap,) = rec.of(Gap)
    assert gap.symbol == SYM and "never came" in gap.reason
    trade(gate.old_sink, 3)  # the old session's: dropped from here on
    trade(gate.new_sink, 4, ts_recv=2)
    assert ids(rec) == [1, 2, 4]


def test_a_late_book_snapshot_is_a_gap() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    gate.old_sink.book_update(SYM, "B", 100, 2, 1, 1, "M", 11)
    gate.finish()  # no snapshot from the new session yet
    (gap,) = rec.of(Gap)
    assert "book" in gap.reason and "snapshot" in gap.reason
    gate.new_sink.book_snapshot(SYM, ((100, 2),), ((101, 1),), 2, 2, 12)
    assert rec.events.index(gap) < rec.events.index(rec.of(BookSnapshot)[0])


def test_a_new_session_behind_at_the_switch_repeats_nothing() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    for i in range(1, 6):
        trade(gate.old_sink, i)
    trade(gate.new_sink, 1, ts_recv=2)
    trade(gate.new_sink, 2, ts_recv=2)
    gate.finish()  # switched (by trade id) but behind: 3..5 still to come
    assert not gate.caught_up()
    for i in range(3, 8):
        trade(gate.new_sink, i, ts_recv=2)
    assert gate.caught_up()
    assert ids(rec) == list(range(1, 8)) and not rec.of(Gap)


def test_a_new_session_that_never_catches_up_is_a_gap() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    for i in range(1, 6):
        trade(gate.old_sink, i)
    trade(gate.new_sink, 1, ts_recv=2)
    gate.finish()
    gate.stop_filtering()
    (gap,) = rec.of(Gap)
    assert "caught up" in gap.reason


def test_a_new_stream_departing_from_the_old_one_is_a_gap_never_out_of_order() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    for i in (1, 2, 3):
        trade(gate.old_sink, i)
    trade(gate.new_sink, 2, ts_recv=2)  # aligned at 2 (a trade id is proof)
    trade(gate.new_sink, 4, ts_recv=2)  # 3 skipped: not what the old one had next
    trade(gate.new_sink, 3, ts_recv=2)  # late and already published: dropped
    (gap,) = rec.of(Gap)
    assert "departed" in gap.reason
    assert ids(rec) == [1, 2, 3, 4]


def test_a_new_session_silent_after_the_switch_loses_nothing_silently() -> None:
    """Aligned on one trade, then nothing more from the new session: the old session's
    later trades are still published (whichever session delivers first), and at the
    end the new one is behind: a Gap, never a silent switch."""
    gate, rec, _ = setup()
    gate.start_overlap()
    trade(gate.old_sink, 1)
    trade(gate.new_sink, 1, ts_recv=2)  # e.g. a subscribe-time "last trade"
    for i in (2, 3):
        trade(gate.old_sink, i)
    assert ids(rec) == [1, 2, 3]
    assert not gate.settled(0.0)
    gate.finish()
    assert not gate.caught_up()
    gate.stop_filtering()
    (gap,) = rec.of(Gap)
    assert "caught up" in gap.reason


def test_a_tick_the_new_session_skipped_is_a_gap() -> None:
    gate, rec, _ = setup()
    gate.start_overlap()
    trade(gate.old_sink, 1)
    trade(gate.new_sink, 1, ts_recv=2)
    trade(gate.new_sink, 3, ts_recv=2)  # new is ahead: published
    trade(gate.old_sink, 2)  # the old session had 2, which the new one went past
    (gap,) = rec.of(Gap)
    assert "skipped" in gap.reason
    assert ids(rec) == [1, 3], "never out of order"
