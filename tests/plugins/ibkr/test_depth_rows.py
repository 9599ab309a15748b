"""Depth by row position without sockets: IB's insert and delete shift the rows below,
and the plugin publishes the price levels that changed (the simulator only ever inserts
and deletes at the end, so the shifting cases are here)."""

from __future__ import annotations

from typing import Any

from hub_core import BookSnapshot, BookUpdate, ExchangeConfig, TypedEventBus
from hub_core.processor import EventProcessor
from hub_plugin_ibkr import IbkrFactory, codec
from hub_plugin_ibkr.codec import DEPTH_ASK, DEPTH_BID, DEPTH_DELETE, DEPTH_INSERT, DEPTH_UPDATE
from hub_plugin_ibkr.connection import IbkrConnection, StreamState

G = 1_000_000_000


def make() -> tuple[IbkrConnection, list[Any]]:
    bus = TypedEventBus()
    got: list[Any] = []
    bus.subscribe(BookUpdate, got.append)
    bus.subscribe(BookSnapshot, got.append)
    cfg = ExchangeConfig.interactive_brokers(
        "127.0.0.1:1", 1, options={"market_data": "depth", "depth_rows": 2}
    )
    conn = IbkrFactory().create(cfg, EventProcessor(bus).sink_for("ib"))
    st = StreamState(4, "depth", "AAPL")
    conn._streams[4] = st
    conn._symbols["AAPL"] = [st]
    return conn, got


def row(conn: IbkrConnection, pos: int, op: int, side: int, price: str, size: str) -> None:
    conn._depth(codec.decode_fields(codec.encode_depth(4, pos, op, side, price, size)[4:]))


def updates(got: list[Any]) -> list[tuple[str, int, int]]:
    return [(u.side, u.price, u.size) for u in got if isinstance(u, BookUpdate)]


def test_the_book_starts_as_a_snapshot_once_every_row_is_in() -> None:
    conn, got = make()
    row(conn, 0, DEPTH_INSERT, DEPTH_BID, "10.00", "5")
    row(conn, 1, DEPTH_INSERT, DEPTH_BID, "9.99", "6")
    row(conn, 0, DEPTH_INSERT, DEPTH_ASK, "10.01", "7")
    assert got == []  # not whole yet
    row(conn, 1, DEPTH_INSERT, DEPTH_ASK, "10.02", "8")
    [snap] = got
    assert snap.bids == ((10 * G, 5 * G), (9_990_000_000, 6 * G))
    assert snap.asks == ((10_010_000_000, 7 * G), (10_020_000_000, 8 * G))


def test_an_insert_in_the_middle_shifts_the_rows_below() -> None:
    conn, got = make()
    for pos, price, size in ((0, "10.00", "5"), (1, "9.98", "6")):
        row(conn, pos, DEPTH_INSERT, DEPTH_BID, price, size)
    for pos, price, size in ((0, "10.01", "7"), (1, "10.02", "8")):
        row(conn, pos, DEPTH_INSERT, DEPTH_ASK, price, size)
    got.clear()
    row(conn, 1, DEPTH_INSERT, DEPTH_BID, "9.99", "3")  # a new second level
    assert updates(got) == [("B", 9_990_000_000, 3 * G)]
    assert conn._streams[4].bids == [
        (10 * G, 5 * G),
        (9_990_000_000, 3 * G),
        (9_980_000_000, 6 * G),
    ]
    got.clear()
    row(conn, 0, DEPTH_DELETE, DEPTH_BID, "", "")  # the best goes: everything moves up
    assert updates(got) == [("B", 10 * G, 0)]
    assert conn._streams[4].bids[0] == (9_990_000_000, 3 * G)
    got.clear()
    row(conn, 0, DEPTH_UPDATE, DEPTH_ASK, "10.01", "9")  # a size change in place
    assert updates(got) == [("A", 10_010_000_000, 9 * G)]
    got.clear()
    row(conn, 0, DEPTH_UPDATE, DEPTH_ASK, "10.00", "2")  # a row that changes price
    assert updates(got) == [("A", 10_010_000_000, 0), ("A", 10 * G, 2 * G)]
