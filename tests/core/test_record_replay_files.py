"""Replay: recorded files and Databento's own DBN files back through the bus."""

from __future__ import annotations

import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import databento_dbn
import pytest
import zstandard

from hub_core.bus import TICK_TYPES, TypedEventBus
from hub_core.dbn import PRICE_SCALE, encode_metadata, encode_symbol_mapping, encode_trade
from hub_core.hub import ExchangeHub
from hub_core.recording import HOUR_NS, Recorder
from hub_core.registry import ExchangeRegistry
from hub_core.replay import ReplayError
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Gap, Quote, Trade

T0 = 1_764_770_400 * 1_000_000_000 + 5  # 2025-12-03 14:00:00 UTC


def new_hub() -> ExchangeHub:
    return ExchangeHub(TypedEventBus(), registry=ExchangeRegistry())


def collect(hub: ExchangeHub) -> list[Any]:
    got: list[Any] = []
    for t in TICK_TYPES:
        hub.bus.subscribe(t, got.append)
    return got


def replay(paths: Any, speed: float | None = None) -> tuple[list[Any], Any, ExchangeHub]:
    hub = new_hub()
    got = collect(hub)
    stats = anyio.run(lambda: hub.replay(paths, speed))
    return got, stats, hub


def live_ticks() -> list[Any]:
    px = PRICE_SCALE
    return [
        Trade("nt", "ES", 5000 * px, 2 * px, "B", T0 - 9, T0, 7),
        Trade("bin", "BTCUSDT", 90_000 * px, px // 1000, "A", T0, T0 + 1, 0),
        Quote("nt", "NQ", 10 * px, px, 11 * px, 3 * px, T0, T0 + 2, 0),
        BookUpdate("bin", "BTCUSDT", "B", 89_999 * px, px, T0, T0 + 3, "M", 0, 0),
        BookClear("nt", "ES", T0, T0 + 4, 9),
        BookSnapshot("nt", "NQ", ((10 * px, px),), ((11 * px, 2 * px),), T0, T0 + 5, 10),
        Gap("bin", "", T0 - 100, T0 + 6, "link dropped", 0, 0, T0 + 6, T0 + 6),
        Gap("nt", "ES", T0, T0 + 7, "sequence gap: expected 3, got 5", 3, 4, T0 + 7, T0 + 7),
        Trade("nt", "ES", 5001 * px, px, "A", T0 + HOUR_NS, T0 + HOUR_NS, 11),
    ]


def record(tmp_path: Path, ticks: list[Any]) -> Path:
    bus = TypedEventBus()
    rec = Recorder(tmp_path / "rec")
    rec.attach(bus)
    for t in ticks:
        bus.publish(t)
    rec.close()
    return tmp_path / "rec"


def test_a_recorded_directory_replays_tick_for_tick_merged_by_ts_recv(tmp_path: Path) -> None:
    ticks = live_ticks()
    got, stats, hub = replay(record(tmp_path, ticks))
    assert [t.as_dict() for t in got] == [t.as_dict() for t in ticks]
    assert [type(t) for t in got] == [type(t) for t in ticks]
    assert sorted(stats.exchanges) == ["bin", "nt"] and len(stats.files) == 3
    per = hub.event_processor().get_stats().per_exchange
    assert (per["nt"].trades, per["nt"].gaps, per["bin"].gaps) == (2, 1, 1)


def test_paced_replay_delivers_the_same_ticks_in_order(tmp_path: Path) -> None:
    ticks = [t for t in live_ticks() if t.ts_recv < T0 + HOUR_NS]
    got, _, _ = replay(record(tmp_path, ticks), speed=1000.0)
    assert [t.as_dict() for t in got] == [t.as_dict() for t in ticks]


def test_one_file_of_one_exchange_replays_on_the_fast_path(tmp_path: Path) -> None:
    ticks = [t for t in live_ticks() if t.exchange == "nt" and t.ts_recv < T0 + HOUR_NS]
    rec = record(tmp_path, ticks)
    (path,) = (rec / "nt").iterdir()
    got, stats, _ = replay(path)
    assert [t.as_dict() for t in got] == [t.as_dict() for t in ticks]
    assert stats.records > len(ticks)  # the symbol mappings count too


def _databento_file(path: Path, version: int, compress: bool) -> list[Any]:
    """A historical file as Databento ships them: symbology in the metadata mappings."""
    iv = SimpleNamespace(
        start_date=datetime.date(2025, 12, 3), end_date=datetime.date(2025, 12, 4), symbol="5482"
    )
    meta = databento_dbn.Metadata(
        "GLBX.MDP3",
        T0,
        databento_dbn.SType.RAW_SYMBOL,
        databento_dbn.SType.INSTRUMENT_ID,
        databento_dbn.Schema.TRADES,
        symbols=["ESZ5"],
        mappings=[SimpleNamespace(raw_symbol="ESZ5", intervals=[iv])],
        version=version,
    )
    trades = [
        databento_dbn.TradeMsg(
            1,
            5482,
            T0 + i,
            (6000 + i) * PRICE_SCALE,
            1 + i,
            databento_dbn.Action.TRADE,
            databento_dbn.Side.BID,
            0,
            T0 + 10 + i,
            sequence=100 + i,
        )
        for i in range(3)
    ]
    data = meta.encode() + b"".join(bytes(t) for t in trades)
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if compress else data)
    return trades


@pytest.mark.parametrize(("version", "compress"), [(1, True), (2, False), (3, True)])
def test_databento_historical_files_replay(tmp_path: Path, version: int, compress: bool) -> None:
    d = tmp_path / "GLBX.MDP3"
    d.mkdir()
    path = d / ("test_data.trades.dbn" + (".zst" if compress else ""))
    trades = _databento_file(path, version, compress)
    got, stats, hub = replay(tmp_path)
    assert stats.exchanges == ["GLBX.MDP3"]
    assert [(t.exchange, t.symbol, t.price, t.size, t.ts_recv, t.sequence) for t in got] == [
        ("GLBX.MDP3", "ESZ5", r.price, r.size * PRICE_SCALE, r.ts_recv, r.sequence) for r in trades
    ]
    assert hub.event_processor().get_stats().malformed_frames == 0


def test_a_file_cut_inside_a_record_is_reported_and_the_rest_replays(tmp_path: Path) -> None:
    t = Trade("x", "ES", PRICE_SCALE, PRICE_SCALE, "B", T0, T0)
    data = (
        encode_metadata("x", None, T0, None, 1, 0, [])
        + encode_symbol_mapping(1, "ES", T0)
        + encode_trade(t, 1)
        + encode_trade(t, 1)[:20]
    )
    (tmp_path / "x.dbn").write_bytes(data)
    got, _, hub = replay(tmp_path / "x.dbn")
    assert [g.as_dict() for g in got] == [t.as_dict()]
    assert hub.event_processor().get_stats().malformed_frames == 1


def test_errors_are_replay_errors_of_one_line(tmp_path: Path) -> None:
    (tmp_path / "notdbn.dbn").write_text("hello, this is not DBN")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    cases = {
        tmp_path / "missing.dbn": "no such file or directory",
        tmp_path / "notdbn.dbn": "not a DBN file",
        tmp_path / "empty": "no *.dbn or *.dbn.zst files",
    }
    for path, words in cases.items():
        with pytest.raises(ReplayError) as info:
            replay(path)
        assert words in str(info.value) and "\n" not in str(info.value)


def test_a_dbn_session_recorded_as_it_came_replays_with_its_gaps(tmp_path: Path) -> None:
    live = new_hub()
    got_live = collect(live)
    recorder = live.record(tmp_path / "rec")
    sink = live.event_processor().sink_for("nt")
    recorder.tap(sink)  # (connect_exchange does this for a connection)
    t = Trade("nt", "ES", PRICE_SCALE, PRICE_SCALE, "B", T0, T0)
    sink.feed_dbn(encode_symbol_mapping(9, "ES", T0) + encode_trade(t, 9), T0 + 1)
    sink.gap("ES", T0, T0 + 2, "sequence gap: expected 2, got 4", 2, 3)
    sink.gap("NQ", T0, T0 + 3, "stale")  # a symbol the session never mapped
    live.stop_recording()
    got, _, _ = replay(tmp_path / "rec")
    assert [type(e).__name__ for e in got] == ["Trade", "Gap", "Gap"]
    assert [e.as_dict() for e in got] == [e.as_dict() for e in got_live]
