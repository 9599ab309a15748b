"""Replay on the Coinbase and Kraken venues, through a real ``ExchangeHub``, once per
transport.

A session with the synthetic venue is recorded by a plain WebSocket client into a file
in the ``recorded`` format, then the venue replays that file (run as ``hub sim websocket
--dialect NAME -o replay=FILE -o replay_speed=0`` runs it: through ``serve_simulator``
with text options) and the hub must deliver exactly the recording's trades and quotes
and build exactly its books, without a ``Gap``. Kraken's dialect subscribes one channel
a request, 200 ms apart: the channels subscribed later must still get their recorded
messages from the start. Also: ``replay_speed`` paces a hand-made recording, text
options are converted or refused by name, the command line replays for every venue.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect

from hub_core import Gap, Quote, Trade
from hub_core.testing import EventRecorder
from hub_plugin_websocket.recorded import RecordedMessage, Recording, load_recording
from hub_plugin_websocket.simulator import (
    DEFAULT_SYMBOLS,
    main,
    serve_simulator,
    simulator_options,
)
from hub_plugin_websocket.simulators import CoinbaseSimulator, KrakenSimulator, WebSocketVenue
from tests.plugins.websocket.conftest import RECORDED, book_levels, running_venue

pytestmark = pytest.mark.anyio

Book = dict[tuple[str, int], int]
SYMBOLS = {"coinbase": ["BTC-USD", "ETH-USD"], "kraken": ["BTC/USD", "ETH/USD"]}
HUB_CHANNELS = {
    "coinbase": ["matches", "ticker", "level2", "heartbeat"],
    "kraken": ["trade", "ticker", "book@10"],
}
KRAKEN_DEPTH = 10


def fixed(value: str | Decimal) -> int:
    """Decimal text (or a JSON number read as ``Decimal``) -> the hub's 1e-9 fixed point."""
    return int(Decimal(value).scaleb(9))


# -- recording the synthetic venue -----------------------------------------------------------
def subscribe_requests(name: str) -> list[dict[str, Any]]:
    """What the recording client sends: every channel of both symbols."""
    symbols = SYMBOLS[name]
    if name == "coinbase":
        return [{"type": "subscribe", "product_ids": symbols, "channels": HUB_CHANNELS[name]}]
    params: list[dict[str, Any]] = [
        {"channel": "trade", "symbol": symbols},
        {"channel": "ticker", "symbol": symbols},
        {"channel": "book", "symbol": symbols, "depth": KRAKEN_DEPTH},
    ]
    return [{"method": "subscribe", "params": p, "req_id": i} for i, p in enumerate(params, 1)]


def trades_in(name: str, messages: list[dict[str, Any]]) -> int:
    """Trade messages among ``messages`` (decoded), per the venue's format."""
    if name == "coinbase":
        return sum(1 for m in messages if m.get("type") == "match")
    return sum(
        len(m["data"]) for m in messages if m.get("channel") == "trade" and m["type"] == "update"
    )


async def record_synthetic(name: str, path: Path) -> None:
    """Record a session with the synthetic venue into ``path`` (the ``recorded`` format:
    the URL opened, the requests sent, every message received with its time)."""
    sim: WebSocketVenue
    if name == "coinbase":
        sim = CoinbaseSimulator(SYMBOLS[name], rate=300, seed=71, heartbeat_interval_s=0.05)
    else:
        sim = KrakenSimulator(SYMBOLS[name], rate=300, seed=72, heartbeat_interval_s=0.05)
    received: list[dict[str, Any]] = []
    # max_queue=None: the client keeps reading while it closes, so the venue's close frame
    # is not stuck behind the data it goes on sending
    async with sim, connect(sim.endpoint, max_queue=None) as ws:
        lines = [f"{sim.endpoint} <-> {time.time()}"]
        for req in subscribe_requests(name):
            text = json.dumps(req)
            lines.append(f"{sim.endpoint} <- {time.time()}: {text}")
            await ws.send(text)
        with anyio.fail_after(10):
            while trades_in(name, received) < 60:
                frame = str(await ws.recv())
                lines.append(f"{time.time()}: {frame}")
                received.append(json.loads(frame))
    await anyio.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- what the hub must make of a recording (computed here, not by the dialects) ---------------
Expected = tuple[
    dict[str, list[tuple[int, int, str]]],
    dict[str, list[tuple[int, int, int, int]]],
    dict[str, Book],
]
"""Per symbol: trades (price, size, aggressor), quotes (bid, size, ask, size), last book."""


def expected_coinbase(rec: Recording) -> Expected:
    trades: dict[str, list[tuple[int, int, str]]] = {}
    quotes: dict[str, list[tuple[int, int, int, int]]] = {}
    books: dict[str, Book] = {}
    for msg in rec.received:
        m = json.loads(msg.text)
        kind, sym = m.get("type"), m.get("product_id", "")
        if kind == "match":  # side is the maker's: "sell" means a buyer hit it
            side = "B" if m["side"] == "sell" else "A"
            trades.setdefault(sym, []).append((fixed(m["price"]), fixed(m["size"]), side))
        elif kind == "ticker":
            top = (m["best_bid"], m["best_bid_size"], m["best_ask"], m["best_ask_size"])
            quotes.setdefault(sym, []).append(
                (fixed(top[0]), fixed(top[1]), fixed(top[2]), fixed(top[3]))
            )
        elif kind == "snapshot":
            books[sym] = {("B", fixed(p)): fixed(q) for p, q in m["bids"]} | {
                ("A", fixed(p)): fixed(q) for p, q in m["asks"]
            }
        elif kind == "l2update":
            for side, p, q in m["changes"]:
                key = ("B" if side == "buy" else "A", fixed(p))
                if fixed(q):
                    books[sym][key] = fixed(q)
                else:
                    books[sym].pop(key, None)
    return trades, quotes, books


def expected_kraken(rec: Recording) -> Expected:
    trades: dict[str, list[tuple[int, int, str]]] = {}
    quotes: dict[str, list[tuple[int, int, int, int]]] = {}
    books: dict[str, Book] = {}
    for msg in rec.received:
        m = json.loads(msg.text, parse_float=Decimal)
        channel, kind = m.get("channel"), m.get("type")
        for d in m.get("data", []) if channel in ("trade", "ticker", "book") else []:
            sym = d["symbol"]
            if channel == "trade" and kind == "update":  # side is the taker's
                side = "B" if d["side"] == "buy" else "A"
                trades.setdefault(sym, []).append((fixed(d["price"]), fixed(d["qty"]), side))
            elif channel == "ticker":
                quotes.setdefault(sym, []).append(
                    (fixed(d["bid"]), fixed(d["bid_qty"]), fixed(d["ask"]), fixed(d["ask_qty"]))
                )
            elif channel == "book":
                book = {} if kind == "snapshot" else books[sym]
                for side, levels in (("B", d["bids"]), ("A", d["asks"])):
                    for lv in levels:
                        key = (side, fixed(lv["price"]))
                        if fixed(lv["qty"]):
                            book[key] = fixed(lv["qty"])
                        else:
                            book.pop(key, None)
                books[sym] = truncated(book, KRAKEN_DEPTH)
    return trades, quotes, books


def truncated(book: Book, depth: int) -> Book:
    """The best ``depth`` levels of each side (a Kraken client keeps its depth only)."""
    bids = sorted((k for k in book if k[0] == "B"), key=lambda k: -k[1])[:depth]
    asks = sorted((k for k in book if k[0] == "A"), key=lambda k: k[1])[:depth]
    return {k: book[k] for k in bids + asks}


def ticks(rec: EventRecorder, sym: str) -> tuple[list[Any], list[Any]]:
    trades = [(t.price, t.size, t.side) for t in rec.of(Trade) if t.symbol == sym]
    quotes = [
        (q.bid_price, q.bid_size, q.ask_price, q.ask_size) for q in rec.of(Quote) if q.symbol == sym
    ]
    return trades, quotes


@asynccontextmanager
async def served(dialect: str, **options: Any) -> AsyncIterator[str]:
    """``serve_simulator`` as ``hub sim websocket`` runs it (Binance's default symbols
    standing for "none given"); yields the venue's stream URL."""
    where: list[int] = []
    listening = anyio.Event()

    def ready(host: str, port: int) -> None:
        where.append(port)
        listening.set()

    serve = partial(serve_simulator, dialect=dialect, **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, "127.0.0.1", 0, list(DEFAULT_SYMBOLS), 50.0, ready)
        with anyio.fail_after(5):
            await listening.wait()
        yield f"ws://127.0.0.1:{where[0]}{'/v2' if dialect == 'kraken' else '/'}"
        tg.cancel_scope.cancel()


# -- the replay, end to end --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["coinbase", "kraken"])
async def test_replayed_recording_is_delivered_exactly(
    name: str, transport: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{name}.ws.txt"
    await record_synthetic(name, path)
    recording = load_recording(path)
    assert recording.sent and recording.received
    if name == "coinbase":  # replayed with their trade ids, checked against the matches
        assert any(json.loads(m.text)["type"] == "heartbeat" for m in recording.received)
    expect = expected_coinbase if name == "coinbase" else expected_kraken
    trades, quotes, books = expect(recording)
    symbols = SYMBOLS[name]
    assert all(trades.get(s) and quotes.get(s) and books.get(s) for s in symbols)

    def complete(rec: EventRecorder) -> bool:
        return all(
            len(ticks(rec, s)[0]) >= len(trades[s])
            and len(ticks(rec, s)[1]) >= len(quotes[s])
            and book_levels(rec, s) == books[s]
            for s in symbols
        )

    async with (
        served(name, replay=str(path), replay_speed="0") as endpoint,
        running_venue(name, endpoint, transport, symbols, HUB_CHANNELS[name]) as (hub, rec),
    ):
        await rec.wait_for(lambda: complete(rec), 10, "the whole recording")
        for s in symbols:
            assert ticks(rec, s) == (trades[s], quotes[s]), f"{s}: exactly the recorded ticks"
            assert book_levels(rec, s) == books[s]
        assert not rec.of(Gap), "the recorded trade ids, heartbeats and checksums all hold"
        assert hub.event_processor().get_stats().malformed_frames == 0


def coinbase_match(i: int, ts: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000000Z"
    return json.dumps(
        {
            "type": "match",
            "trade_id": 100 + i,
            "sequence": 1000 + i,
            "time": stamp,
            "product_id": "BTC-USD",
            "size": "0.01000000",
            "price": f"{60000 + i}.00",
            "side": "sell",
        }
    )


async def test_replay_speed_paces_the_recording(transport: str) -> None:
    """Nine trades recorded over 2 s, replayed 8 times faster: about 0.25 s apart first to
    last (2 s if the speed were ignored, nothing if pacing were)."""
    t0 = 1_700_000_000.0
    rec_ts = [t0 + 0.25 * i for i in range(9)]
    recording = Recording(
        "ws://venue/",
        t0,
        received=[
            RecordedMessage(ts, coinbase_match(i, ts).encode()) for i, ts in enumerate(rec_ts)
        ],
    )
    async with (
        CoinbaseSimulator([], replay=recording, replay_speed=8) as sim,
        running_venue("coinbase", sim.endpoint, transport, ["BTC-USD"], ["matches"]) as (_, rec),
    ):
        assert sim.symbols == ("BTC-USD",), "the recording's symbols"
        await rec.wait_for(lambda: len(rec.of(Trade)) == 9, 10, "the nine trades")
        got = rec.of(Trade)
        assert [t.price for t in got] == [fixed(f"{60000 + i}") for i in range(9)]
        spread_s = (got[-1].ts_recv - got[0].ts_recv) / 1e9
        assert 0.2 <= spread_s < 1.5, spread_s
        assert not rec.of(Gap)


# -- options and the command line --------------------------------------------------------------
def test_text_options_are_converted_or_refused_by_name() -> None:
    opts = simulator_options(
        "coinbase",
        {
            "replay_speed": "0",
            "subscribe_deadline_s": "0.5",
            "seed": "7",
            "refuse_symbols": "SOL-USD, DOGE-USD",
            "replay": "x.txt",
        },
    )
    assert opts == {
        "replay_speed": 0.0,
        "subscribe_deadline_s": 0.5,
        "seed": 7,
        "refuse_symbols": ["SOL-USD", "DOGE-USD"],
        "replay": "x.txt",
    }
    assert simulator_options("binance-futures", {"messages_per_second": "10"}) == {
        "messages_per_second": 10
    }
    assert simulator_options("kraken", {"replay_speed": 2}) == {"replay_speed": 2}
    with pytest.raises(ValueError, match=r"replay_speed='fast': expected a number"):
        simulator_options("kraken", {"replay_speed": "fast"})
    with pytest.raises(ValueError, match=r"seed='1.5': expected an integer"):
        simulator_options("kraken", {"seed": "1.5"})
    with pytest.raises(ValueError, match=r"heartbeat_interval_s='nan': expected a finite"):
        simulator_options("coinbase", {"heartbeat_interval_s": "nan"})
    with pytest.raises(ValueError, match=r"kraken simulator has no option 'subscribe_deadline_s'"):
        simulator_options("kraken", {"subscribe_deadline_s": "1"})
    with pytest.raises(ValueError, match=r"'ssl_context' cannot be given as text"):
        simulator_options("coinbase", {"ssl_context": "yes"})


async def test_serve_simulator_refuses_a_bad_option_before_listening() -> None:
    def ready(host: str, port: int) -> None:
        pytest.fail("must not listen")

    with pytest.raises(ValueError, match=r"subscribe_deadline_s='soon': expected a number"):
        await serve_simulator(
            "127.0.0.1", 0, [], 10, ready, dialect="coinbase", subscribe_deadline_s="soon"
        )
    with pytest.raises(ValueError, match=r"replay_speed must be >= 0"):
        CoinbaseSimulator(["BTC-USD"], replay_speed=-1)


def test_a_recording_of_another_venue_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no kraken market-data message to replay"):
        KrakenSimulator([], replay=RECORDED)
    with pytest.raises(ValueError, match=r"no coinbase market-data message to replay"):
        CoinbaseSimulator([], replay=RECORDED)


def test_replaying_venue_has_no_synthetic_market() -> None:
    recording = Recording(received=[RecordedMessage(1.0, coinbase_match(0, 1.0).encode())])
    sim = CoinbaseSimulator([], replay=recording)
    assert sim.replaying and sim.symbols == ("BTC-USD",)
    with pytest.raises(RuntimeError, match="idle while a recording is replayed"):
        sim.set_level("BTC-USD", "B", 1, 1)


def test_command_line_replays_for_every_venue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cb.ws.txt"
    path.write_text(f"ws://venue/ <-> 1.0\n1.0: {coinbase_match(0, 1.0)}\n", encoding="utf-8")
    args = ["--dialect", "coinbase", "--replay", str(path), "--replay-speed", "0"]
    assert main([*args, "--duration", "0.1"]) == 0
    assert capsys.readouterr().out.startswith("listening on 127.0.0.1:")
    with pytest.raises(SystemExit):
        main(["--dialect", "kraken", "--replay", str(tmp_path / "missing.txt")])
    assert "--replay: no such file" in capsys.readouterr().err
