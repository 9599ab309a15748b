"""The recorder: DBN v3 zstd files per exchange and hour, read back by databento-dbn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import databento_dbn
import pytest
import zstandard

from hub_core.bus import TypedEventBus
from hub_core.dbn import PRICE_SCALE, encode_symbol_mapping, encode_trade_raw
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.recording import (
    GAP_SYSTEM_CODE,
    HOUR_NS,
    SIZE_DECIMALS_CODE,
    Recorder,
    gap_text,
    hour_name,
    parse_gap_text,
    parse_size_decimals_text,
)
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Gap, Quote, Trade

T0 = 1_764_770_400 * 1_000_000_000 + 5  # 2025-12-03 14:00:00 UTC, + 5 ns


def read_dbn(path: Path) -> tuple[Any, list[Any]]:
    """Metadata and records as Databento's own decoder sees them."""
    dec = databento_dbn.DBNDecoder()
    with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
        dec.write(reader.read())
    out = dec.decode()
    return out[0], out[1:]


def ticks(ex: str = "nt") -> list[object]:
    return [
        Trade(ex, "ES", 5000 * PRICE_SCALE, 2 * PRICE_SCALE, "B", T0 - 9, T0, 7),
        Quote(
            ex, "NQ", 10 * PRICE_SCALE, PRICE_SCALE, 11 * PRICE_SCALE, 3 * PRICE_SCALE, T0, T0 + 1
        ),
        BookUpdate(ex, "ES", "A", 5001 * PRICE_SCALE, PRICE_SCALE, T0, T0 + 2, "A", 42, 8),
        BookClear(ex, "ES", T0, T0 + 3, 9),
        BookSnapshot(ex, "NQ", ((10 * PRICE_SCALE, PRICE_SCALE),), (), T0, T0 + 4, 10),
        Gap(ex, "ES", T0 - 100, T0 + 4, "sequence gap: expected 3, got 5", 3, 4, T0 + 4, T0 + 5),
    ]


def test_every_tick_type_reads_back_in_databento_dbn(tmp_path: Path) -> None:
    bus = TypedEventBus()
    rec = Recorder(tmp_path)
    rec.attach(bus)
    for t in ticks():
        bus.publish(t)
    rec.close()
    path = tmp_path / "nt" / f"{hour_name(T0)}.dbn.zst"
    assert [str(path)] == rec.stats().files
    meta, records = read_dbn(path)
    assert meta.version == 3
    assert meta.dataset == "nt"
    assert meta.schema is None
    assert meta.stype_in == databento_dbn.SType.RAW_SYMBOL
    assert meta.stype_out == databento_dbn.SType.INSTRUMENT_ID
    kinds = [type(r).__name__ for r in records]
    assert kinds == [
        "SymbolMappingMsg",  # ES before its first record
        "TradeMsg",
        "SymbolMappingMsg",  # NQ
        "MBP1Msg",
        "MBOMsg",
        "MBOMsg",
        "MBP10Msg",
        "SystemMsg",
    ]
    es, trade, nq, quote, update, clear, snap, gap = records
    assert (es.stype_in_symbol, es.instrument_id) == ("ES", trade.instrument_id)
    assert (nq.stype_in_symbol, nq.instrument_id) == ("NQ", quote.instrument_id)
    assert trade.price == 5000 * PRICE_SCALE and trade.size == 2 and trade.side == "B"
    assert (trade.ts_event, trade.ts_recv, trade.sequence) == (T0 - 9, T0, 7)
    assert quote.levels[0].bid_px == 10 * PRICE_SCALE and quote.levels[0].ask_sz == 3
    assert (update.order_id, update.action, update.side, update.ts_recv) == (42, "A", "A", T0 + 2)
    assert clear.action == "R" and clear.ts_recv == T0 + 3
    assert snap.levels[0].bid_px == 10 * PRICE_SCALE and snap.ts_recv == T0 + 4
    assert gap.code == GAP_SYSTEM_CODE and gap.ts_event == T0 + 4
    fields = parse_gap_text(gap.msg)
    assert fields is not None
    assert fields == {
        "instrument_id": trade.instrument_id,
        "start_ts": T0 - 100,
        "end_ts": T0 + 4,
        "start_seq": 3,
        "end_seq": 4,
        "ts_recv": T0 + 5,
        "reason": "sequence gap: expected 3, got 5",
    }
    assert rec.stats().written == 6 and rec.stats().dropped == 0


def test_one_file_per_exchange_and_hour_each_with_its_own_header_and_mappings(
    tmp_path: Path,
) -> None:
    bus = TypedEventBus()
    rec = Recorder(tmp_path)
    rec.attach(bus)
    later = T0 + HOUR_NS
    bus.publish(Trade("a", "ES", PRICE_SCALE, PRICE_SCALE, "B", T0, T0))
    bus.publish(Trade("b", "BTCUSDT", PRICE_SCALE, PRICE_SCALE, "A", T0, T0))
    bus.publish(Trade("a", "ES", PRICE_SCALE, PRICE_SCALE, "B", later, later))
    rec.close()
    names = sorted(str(Path(f).relative_to(tmp_path)) for f in rec.stats().files)
    assert names == sorted(
        [
            f"a/{hour_name(T0)}.dbn.zst",
            f"a/{hour_name(later)}.dbn.zst",
            f"b/{hour_name(T0)}.dbn.zst",
        ]
    )
    _, second = read_dbn(tmp_path / "a" / f"{hour_name(later)}.dbn.zst")
    # the new hour's file maps ES again: each file reads on its own
    assert [type(r).__name__ for r in second] == ["SymbolMappingMsg", "TradeMsg"]
    assert second[0].instrument_id == second[1].instrument_id


def test_a_full_queue_drops_nothing_silently_the_file_gets_a_gap(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, max_queue=3)  # no writer thread: nothing drains the queue
    for i in range(10):
        rec.take(Trade("nt", "ES", PRICE_SCALE, PRICE_SCALE, "B", T0 + i, T0 + i))
    assert rec.stats().dropped == 7
    assert rec.stats().queued == 3
    rec.close()
    _, records = read_dbn(tmp_path / "nt" / f"{hour_name(T0)}.dbn.zst")
    assert [type(r).__name__ for r in records] == ["SymbolMappingMsg"] + ["TradeMsg"] * 3 + [
        "SystemMsg"
    ]
    fields = parse_gap_text(records[-1].msg)
    assert fields is not None
    assert (fields["start_ts"], fields["end_ts"], fields["instrument_id"]) == (T0 + 3, T0 + 9, 0)
    assert "7 ticks not written" in fields["reason"]
    assert rec.stats().dropped == 7 and rec.stats().written == 4


def test_a_second_recorder_in_the_same_hour_never_appends_to_a_file(tmp_path: Path) -> None:
    for _ in range(2):
        rec = Recorder(tmp_path)
        rec.take(Trade("nt", "ES", PRICE_SCALE, PRICE_SCALE, "B", T0, T0))
        rec.close()
    files = sorted(p.name for p in (tmp_path / "nt").iterdir())
    assert files == [f"{hour_name(T0)}.2.dbn.zst", f"{hour_name(T0)}.dbn.zst"]
    for name in files:
        _, records = read_dbn(tmp_path / "nt" / name)
        assert len(records) == 2


def test_gap_text_round_trips_and_other_texts_are_not_gaps() -> None:
    gap = Gap("x", "", 1, 2, "link dropped: reason=odd text", 0, 0, 2, 3)
    assert parse_gap_text(gap_text(gap, 0)) == {
        "instrument_id": 0,
        "start_ts": 1,
        "end_ts": 2,
        "start_seq": 0,
        "end_seq": 0,
        "ts_recv": 3,
        "reason": "link dropped: reason=odd text",
    }
    assert parse_gap_text("Heartbeat") is None
    assert parse_gap_text("hub.gap start_ts=x reason=y") is None


def test_a_path_that_is_a_file_is_an_oserror(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        Recorder.check_directory(tmp_path / "f")


def test_fractional_sizes_are_written_in_announced_decimals(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    px = PRICE_SCALE
    rec.take(Trade("bin", "BTCUSDT", 90_000 * px, 2 * px, "B", T0, T0))  # whole: plain DBN
    rec.take(Trade("bin", "BTCUSDT", 90_000 * px, px // 1000, "B", T0, T0 + 1))  # 0.001
    rec.take(Quote("bin", "BTCUSDT", px, 15 * px // 10, 2 * px, px // 100, T0, T0 + 2))
    rec.close()
    _, records = read_dbn(tmp_path / "bin" / f"{hour_name(T0)}.dbn.zst")
    kinds = [type(r).__name__ for r in records]
    assert kinds == ["SymbolMappingMsg", "TradeMsg", "SystemMsg", "TradeMsg", "MBP1Msg"]
    _, whole, note, milli, quote = records
    assert whole.size == 2
    assert note.code == SIZE_DECIMALS_CODE
    assert parse_size_decimals_text(note.msg) == (whole.instrument_id, 3)
    assert milli.size == 1  # in thousandths from the note on
    assert (quote.levels[0].bid_sz, quote.levels[0].ask_sz) == (1500, 10)


def _sink(bus: TypedEventBus, exchange: str) -> ConnectionSink:
    return EventProcessor(bus).sink_for(exchange)


def test_dbn_from_a_connection_is_written_as_it_came_restamped(tmp_path: Path) -> None:
    bus = TypedEventBus()
    rec = Recorder(tmp_path)
    rec.attach(bus)
    sink = _sink(bus, "nt")
    rec.tap(sink)
    published: list[Any] = []
    bus.subscribe(Trade, published.append)
    # publisher 7 and ts_recv 1 on the wire: re-encoding would write publisher 0
    wire = encode_symbol_mapping(5, "ES", T0) + b"".join(
        encode_trade_raw(5, (100 + i) * PRICE_SCALE, PRICE_SCALE, "B", T0, 1, i + 1, 7)
        for i in range(3)
    )
    sink.feed_dbn(wire[:100], T0)  # a record split across two reads
    sink.feed_dbn(wire[100:], T0 + 1)
    rec.close()
    assert len(published) == 3
    _, records = read_dbn(tmp_path / "nt" / f"{hour_name(T0)}.dbn.zst")
    trades = [r for r in records if isinstance(r, databento_dbn.TradeMsg)]
    assert [(r.instrument_id, r.publisher_id, r.sequence) for r in trades] == [
        (5, 7, 1),
        (5, 7, 2),
        (5, 7, 3),
    ]
    # each record carries the hub's ts_recv of the read that completed it, as published
    assert [r.ts_recv for r in trades] == [t.ts_recv for t in published]
    mapped = {r.instrument_id: r.stype_in_symbol for r in records if hasattr(r, "stype_in_symbol")}
    assert mapped == {5: "ES"}
    assert rec.stats().written == 4  # the mapping record and three trades


def test_pass_through_leaves_out_ignored_instruments_and_gaps_malformed_buffers(
    tmp_path: Path,
) -> None:
    bus = TypedEventBus()
    rec = Recorder(tmp_path)
    rec.attach(bus)
    sink = _sink(bus, "nt")
    rec.tap(sink)
    sink.map_symbol(1, "ES")
    sink.map_symbol(2, "NQ")
    sink.ignore_instrument(2)
    both = encode_trade_raw(1, PRICE_SCALE, PRICE_SCALE, "B", T0, 1, 1) + encode_trade_raw(
        2, PRICE_SCALE, PRICE_SCALE, "B", T0, 1, 2
    )
    sink.feed_dbn(both, T0)
    sink.feed_dbn(b"\x01" * 40, T0 + 1)  # garbage: malformed
    rec.close()
    _, records = read_dbn(tmp_path / "nt" / f"{hour_name(T0)}.dbn.zst")
    trades = [r for r in records if isinstance(r, databento_dbn.TradeMsg)]
    assert [r.instrument_id for r in trades] == [1]
    gaps = [parse_gap_text(r.msg) for r in records if isinstance(r, databento_dbn.SystemMsg)]
    assert len(gaps) == 1 and gaps[0] is not None
    assert "malformed input was not written" in gaps[0]["reason"]
