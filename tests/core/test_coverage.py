"""The Gap-rule checks in hub_core.testing, on hand-made event streams."""

import pytest

from hub_core import ConnectionStateChanged, Gap, Trade
from hub_core.testing import (
    assert_blind_windows_covered,
    blind_windows,
    trailing_windows,
    uncovered,
)

MS = 1_000_000


def trade(ts_ms: int, exchange: str = "x") -> dict[str, object]:
    return {"type": "Trade", "exchange": exchange, "symbol": "A", "ts_recv": ts_ms * MS}


def gap(start_ms: int, end_ms: int, exchange: str = "x", symbol: str = "") -> dict[str, object]:
    return {
        "type": "Gap",
        "exchange": exchange,
        "symbol": symbol,
        "start_ts": start_ms * MS,
        "end_ts": end_ms * MS,
    }


def test_silences_are_found_per_connection() -> None:
    events = [trade(0), trade(0, "y"), trade(100), trade(2000), trade(2500, "y"), trade(2100)]
    found = blind_windows(events, 500 * MS)
    assert [(w.exchange, w.start_ns // MS, w.end_ns // MS) for w in found] == [
        ("x", 100, 2000),
        ("y", 0, 2500),
    ]
    assert blind_windows(events, 500 * MS, exchange="y")[0].exchange == "y"


def test_a_window_is_covered_by_the_union_of_gaps_within_the_tolerance() -> None:
    events = [trade(0), trade(3000), gap(0, 1500), gap(1480, 3000)]
    windows = blind_windows(events, 500 * MS)
    assert uncovered(windows, events, tolerance_ns=50 * MS) == []
    late = [trade(0), trade(3000), gap(100, 3000)]  # starts 100 ms after the last data
    assert uncovered(blind_windows(late, 500 * MS), late, tolerance_ns=50 * MS)
    per_symbol = [trade(0), trade(3000), gap(0, 3000, symbol="A")]  # not connection-wide
    assert uncovered(blind_windows(per_symbol, 500 * MS), per_symbol)


def test_a_final_stop_after_a_silence_must_be_in_a_gap() -> None:
    dead = {
        "type": "ConnectionStateChanged",
        "exchange": "x",
        "state": "dead",
        "ts_event": 4000 * MS,
    }
    events = [trade(0), trade(100), dead]
    assert [(w.start_ns // MS, w.end_ns // MS) for w in trailing_windows(events, 500 * MS)] == [
        (100, 4000)
    ]
    with pytest.raises(AssertionError, match="blind windows with no Gap"):
        assert_blind_windows_covered(events, 500 * MS)
    assert assert_blind_windows_covered([*events[:2], gap(100, 4000), dead], 500 * MS)


def test_bus_objects_work_as_well_as_jsonl_dicts() -> None:
    events = [
        Trade("x", "A", 1, 1, "N", 0, 0),
        Trade("x", "A", 1, 1, "N", 0, 2000 * MS),
        Gap("x", "", 0, 2000 * MS, "blind", 0, 0, 0, 0),
        ConnectionStateChanged("x", "closed", "", 2001 * MS, 2001 * MS, "", 0),
    ]
    assert len(assert_blind_windows_covered(events, 500 * MS)) == 1
