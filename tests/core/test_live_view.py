"""The live view at real terminal sizes: no number cut, the frame fits, columns stay put.

Frames are laid out from realistic data (several connections with long names,
prices such as 59999.25, 6000.125 and 1800.5, counters past a million) and
printed into a recording rich console of the terminal's size; every number
shown is parsed back and compared to the data it came from.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from rich.cells import cell_len
from rich.console import Console

from hub_core import (
    ConnectionStateChanged,
    Credentials,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Side,
    TypedEventBus,
)
from hub_core.cli.frame import FrameData, FrameLayout, fixed_parts, shorten, shorten_words
from hub_core.cli.live_view import LiveView, LogFeed
from hub_core.fixed import PRICE_SCALE
from hub_core.redact import SECRETS
from hub_core.status import ConnectionDetails
from hub_core.testing import EventRecorder
from hub_core.ticks import Quote, Trade

from .lineproto import LineServer, Plugin
from .test_cli import PLUGIN_SOURCE, _dist, hub_cmd

SIZES = [(80, 24), (120, 30), (200, 50)]
NOW = 1_764_053_123_000_000_000
BINANCE = "binance_futures_usdm_mainnet"
NINJA = "ninjatrader"
FIX = "fix_primary_venue"
LATENCY_UNITS = {"ns": 1, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def px(text: str) -> int:
    """Exact decimal text -> fixed point."""
    return int(Decimal(text) * PRICE_SCALE)


def dec(raw: int) -> Decimal:
    return Decimal(raw) / PRICE_SCALE


SYMBOLS = [
    # connection, symbol, last, size, bid, bid size, ask, ask size
    (BINANCE, "BTCUSDT", "59999.25", "0.015", "59999.2", "1.5", "59999.3", "2.25"),
    (BINANCE, "ETHUSDT", "1800.5", "12.5", "1800.49", "40", "1800.51", "3"),
    (NINJA, "ES", "6000.125", "3", "6000", "1500000", "6000.25", "17"),
    (NINJA, "NQ", "21000.75", "1", "21000.5", "8", "21001", "2"),
    (NINJA, "GC", "2650.1", "2", "2650", "4", "2650.2", "5"),
    (FIX, "EURUSD", "1.08345", "1000000", "1.0834", "2500000", "1.08355", "1000000"),
]


def connections(scale: int = 1) -> list[ConnectionDetails]:
    return [
        ConnectionDetails(
            BINANCE,
            "websocket",
            "connected",
            True,
            "",
            "wss://127.0.0.1:40123/ws",
            0,
            symbols={
                "BTCUSDT": "subscribed",
                "ETHUSDT": "subscribed",
                "DOGEUSDT": "refused: unknown symbol",
                "XRPUSDT": "quiet",
            },
            last_message_ns=NOW - 200_000_000,
            latency_ns={"p50": 138_000, "p90": 201_500, "p99": 404_100, "p99_9": 1_021_300},
            trades=1_234_567 * scale,
            quotes=9_876_543 * scale,
            book_updates=12_345_678 * scale,
            snapshots=12,
            gaps=3,
            malformed=1,
            reconnects=2,
        ),
        ConnectionDetails(
            NINJA,
            "ninjatrader",
            "connected",
            True,
            "",
            "127.0.0.1:40124",
            0,
            symbols={"ES": "subscribed", "NQ": "subscribed", "GC": "subscribed"},
            last_message_ns=NOW - 50_000_000,
            latency_ns={"p50": 4_100, "p90": 9_000, "p99": 80_100, "p99_9": 99_000},
            trades=1_100_000 * scale,
            quotes=2_200_000 * scale,
            book_updates=3_300_000 * scale,
            book_clears=3,
        ),
        ConnectionDetails(
            FIX,
            "fix",
            "reconnecting",
            False,
            "ConnectionRefusedError: [Errno 111] connection refused",
            "127.0.0.1:40125",
            3,
            symbols={"EURUSD": "pending"},
            last_message_ns=NOW - 75_000_000_000,
            trades=999,
            quotes=1_000_001 * scale,
            reconnects=17,
        ),
    ]


def frame_data(scale: int = 1, rates: dict[str, float] | None = None) -> FrameData:
    trades: dict[tuple[str, str], Trade] = {}
    quotes: dict[tuple[str, str], Quote] = {}
    for ex, sym, last, size, bid, bsz, ask, asz in SYMBOLS:
        trades[(ex, sym)] = Trade(ex, sym, px(last), px(size), Side.BUY, NOW, NOW - 300_000_000)
        quotes[(ex, sym)] = Quote(
            ex, sym, px(bid), px(bsz), px(ask), px(asz), NOW, NOW - 100_000_000
        )
    return FrameData(
        "hub demo: simulators on 127.0.0.1 (ninjatrader 127.0.0.1:40124, "
        "websocket 127.0.0.1:40123, fix 127.0.0.1:40125)",
        connections(scale),
        rates=rates if rates is not None else {BINANCE: 123_456.0, NINJA: 1_520.0},
        trades=trades,
        quotes=quotes,
        latency_ns={"p50": 12_345, "p90": 45_000, "p99": 404_000, "p99_9": 2_100_000},
        dropped=1_234_567,
        handler_errors=2,
        uptime_s=3_723.0,
        status="3 warnings: last 12:00:01 warning hub_core.supervisor: [fix_primary_venue] "
        "reconnecting 127.0.0.1:40125: connection refused",
        now_ns=NOW,
    )


def render(layout: FrameLayout, data: FrameData, width: int, height: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, height=height, record=True)
    console.print(layout.render(data, width, height))
    return console.export_text().splitlines()


# -- reading numbers back -------------------------------------------------------------
def number_tokens(line: str) -> list[str]:
    return [t for t in line.split() if any(ch.isdigit() for ch in t)]


def latency_ns(token: str) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|µs|ms)", token)
    return int(float(m[1]) * LATENCY_UNITS[m[2]]) if m else None


def age_s(token: str) -> float | None:
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)s", token):
        return float(m[1])
    if m := re.fullmatch(r"(?:(\d+):)?(\d\d):(\d\d)", token):
        return int(m[1] or 0) * 3600 + int(m[2]) * 60 + int(m[3])
    return None


def check_row(
    tokens: list[str], exact: set[Decimal], latencies: set[int], ages: set[float]
) -> None:
    """Every number of a row is one of the row's values, whole."""
    for tok in tokens:
        assert "…" not in tok and "..." not in tok, tok
        if (ns := latency_ns(tok)) is not None:
            # shown rounded to 2-3 significant digits: never a cut-off part of another
            assert any(abs(ns - v) <= max(v * 0.05, 1) for v in latencies), (tok, latencies)
        elif (s := age_s(tok)) is not None:
            assert any(abs(s - a) <= 1 for a in ages), (tok, ages)
        else:
            value = Decimal(tok.replace(",", ""))
            assert value in exact, (tok, sorted(exact))


def rows_after(lines: list[str], header_index: int) -> list[str]:
    out = []
    for line in lines[header_index + 1 :]:
        if not line.strip() or line.startswith(("+", "latency")):
            break
        out.append(line)
    return out


def symbols_header(lines: list[str]) -> int:
    return next(i for i, ln in enumerate(lines) if " last " in f" {ln} " and " bid" in ln)


def shown_name(line: str, names: list[str]) -> str:
    """Which of ``names`` (possibly shortened with an ellipsis) ``line`` starts with."""
    first = line.split(maxsplit=1)[0]
    found = [n for n in names if n == first or (first.endswith("…") and n.startswith(first[:-1]))]
    assert len(found) == 1, (first, names)
    return found[0]


def check_frame(lines: list[str], data: FrameData, width: int, height: int) -> None:
    text = "\n".join(lines)
    assert len(lines) <= height, text
    assert all(cell_len(ln) <= width for ln in lines), text
    assert not re.search(r"\d…|…\d", text), text  # no number cut with an ellipsis
    assert "..." not in text

    # connections: every number is a whole value of its row
    conn_rows = lines[2 : 2 + len(data.connections)]  # notes follow the rows
    names = [d.exchange for d in data.connections]
    for line in conn_rows:
        d = data.connections[names.index(shown_name(line, names))]
        exact = {
            Decimal(round(data.rates.get(d.exchange, 0.0))),
            Decimal(d.trades),
            Decimal(d.quotes),
            Decimal(d.book_updates + d.snapshots + d.book_clears),
            Decimal(d.gaps),
            Decimal(d.malformed),
            Decimal(d.reconnects),
        }
        tokens = [t for t in number_tokens(line) if t != d.endpoint]
        check_row(
            tokens,
            exact,
            set(d.latency_ns.values()),
            {(data.now_ns - d.last_message_ns) / 1e9},
        )
        shown = {Decimal(t.replace(",", "")) for t in tokens if re.fullmatch(r"[\d,]+", t)}
        assert {Decimal(d.trades), Decimal(d.quotes)} <= shown, line
        assert "p99" not in d.latency_ns or f"{d.latency_ns['p99'] // 1000}µs" in line

    # symbols: prices and sizes exact, the decimal points of a column in one place
    head = symbols_header(lines)
    sym_rows = rows_after(lines, head)
    assert len(sym_rows) == len(SYMBOLS), text
    by_symbol = {s[1]: s for s in SYMBOLS}
    for line in sym_rows:
        _, _, last, size, bid, bsz, ask, asz = by_symbol[line.split()[1]]
        values = {Decimal(v) for v in (last, size, bid, bsz, ask, asz)}
        tokens = number_tokens(line)
        check_row([t for t in tokens if not t.endswith("s")], values, set(), set())
        shown = {Decimal(t) for t in tokens if not t.endswith("s")}
        assert {Decimal(last), Decimal(bid), Decimal(ask)} <= shown, line
    header = lines[head]
    for col in ("last", "bid", "ask"):
        end = header.index(f" {col}") + len(col) + 1  # right-aligned: ends under the header
        points = set()
        for line in sym_rows:
            cell = line[:end].split()[-1]
            # the point (or where it would be) sits at the same distance from the column end
            points.add(end - (line[:end].rindex(".") if "." in cell else end))
        assert len(points) == 1, (col, points, text)

    # per-connection latency and the problems
    assert "404µs" in text and "80µs" in text
    assert "DOGEUSDT (unknown symbol)" in text
    assert "quiet: XRPUSDT" in text
    assert "reconnecting: ConnectionRefusedError" in text


# -- the tests ------------------------------------------------------------------------
# 90x25 and 118x30: where a new user saw 59999.… and cut counters
@pytest.mark.parametrize(("width", "height"), [*SIZES, (90, 25), (118, 30)])
def test_every_number_is_whole_and_the_frame_fits(width: int, height: int) -> None:
    data = frame_data()
    lines = render(FrameLayout(), data, width, height)
    check_frame(lines, data, width, height)
    # the status line: the last warning, shortened at a word, never mid-number
    assert lines[-1].startswith("3 warnings: last 12:00:01")


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_columns_keep_their_width_between_frames(width: int, height: int) -> None:
    layout = FrameLayout()
    first = render(layout, frame_data(), width, height)
    widths = {k: {c.key: f.widths[c.key] for c in f.columns} for k, f in layout.fitted.items()}
    # smaller numbers next: the columns keep the width the bigger ones needed
    second = render(layout, frame_data(rates={BINANCE: 5.0, NINJA: 1.0}), width, height)
    assert {k: {c.key: f.widths[c.key] for c in f.columns} for k, f in layout.fitted.items()} == (
        widths
    )
    assert second[1] == first[1]  # the connections' header, column for column
    head = symbols_header(first)
    assert second[head] == first[head]
    assert [len(ln) for ln in first[2:5]] == [len(ln) for ln in second[2:5]]
    # growing counters widen their columns (and may push one out), never narrow one
    render(layout, frame_data(scale=1000), width, height)
    for table, fit in layout.fitted.items():
        for c in fit.columns:
            assert fit.widths[c.key] >= widths[table].get(c.key, 0), (table, c.key)
    assert layout.fitted["connections"].widths["trades"] > widths["connections"]["trades"]


def test_a_narrower_terminal_lets_columns_narrow() -> None:
    layout = FrameLayout()
    render(layout, frame_data(scale=1000), 200, 50)
    wide = layout.widths["connections.trades"]
    lines = render(layout, frame_data(), 120, 30)
    assert layout.widths["connections.trades"] < wide
    check_frame(lines, frame_data(), 120, 30)


def test_prices_keep_the_decimals_once_seen() -> None:
    layout = FrameLayout()
    es = (NINJA, "ES")
    data = frame_data()
    render(layout, data, 200, 50)
    assert layout.price_decimals[es] == 3
    round_trade = Trade(NINJA, "ES", px("6001"), px("1"), Side.SELL, NOW, NOW)
    trades = {**data.trades, es: round_trade}
    lines = render(layout, FrameData("t", data.connections, trades=trades, now_ns=NOW), 200, 50)
    row = next(ln for ln in lines if " ES " in ln)
    assert "6001.000" in row
    assert fixed_parts(px("-0.5"), 2) == ("-0", "50")


def test_more_symbols_than_rows_are_counted_not_cut() -> None:
    data = frame_data()
    trades = dict(data.trades)
    for i in range(60):
        sym = f"SYM{i:03d}"
        trades[(NINJA, sym)] = Trade(NINJA, sym, px("100.25"), px("1"), Side.BUY, NOW, NOW)
    lines = render(FrameLayout(), FrameData("t", data.connections, trades=trades), 80, 24)
    assert len(lines) <= 24
    rows = rows_after(lines, symbols_header(lines))
    more = next(ln for ln in lines if ln.startswith("+") and "more symbols" in ln)
    assert len(rows) + int(more.split()[0][1:]) == len(trades)


@pytest.mark.parametrize("height", [6, 10, 14])
def test_a_short_terminal_gets_a_frame_no_taller(height: int) -> None:
    lines = render(FrameLayout(), frame_data(), 80, height)
    assert len(lines) <= height
    assert lines[0].startswith("hub demo")
    assert not re.search(r"\d…|…\d", "\n".join(lines))


def test_names_are_shortened_never_into_a_number() -> None:
    assert shorten("binance_futures_usdm", 12) == "binance_fut…"
    assert shorten("cme_2025_es", 8) == "cme…"
    assert shorten("ES", 8) == "ES"
    assert shorten_words("connect 127.0.0.1:40125 refused", 26) == "connect 127.0.0.1:40125 …"


def test_log_records_feed_the_status_line_not_the_terminal() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [Keep()]
    root.setLevel(logging.INFO)
    secret = "hunter2-live-view-secret"
    SECRETS.add(secret)
    try:
        hub = ExchangeHub(registry=ExchangeRegistry())
        console = Console(
            file=io.StringIO(), width=100, height=30, force_terminal=True, color_system=None
        )
        view = LiveView(hub, "hub test", console=console)
        view.start()
        log = logging.getLogger("hub_core.test")
        log.info("connected")
        log.warning("reconnecting 127.0.0.1:40125 with password %s", secret)
        log.warning("second warning")
        assert not seen  # nothing printed over the display
        status = view.logs.status()
        assert status.startswith("2 warnings: last ") and "second warning" in status
        view.refresh()
        assert "2 warnings" in console.file.getvalue()  # type: ignore[attr-defined]
        view.close()
        assert root.handlers[0].__class__ is Keep  # given back
        assert [r.getMessage() for r in seen][-1] == "second warning"  # replayed after
        assert len(seen) == 2  # warnings only, the info record stays in the view
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    feed = LogFeed()
    feed.handle(logging.LogRecord("x", logging.WARNING, "f", 1, "pw %s", (secret,), None))
    assert secret not in feed.status()


def test_a_shrinking_terminal_gets_a_clear_screen_and_a_fitting_frame() -> None:
    hub = ExchangeHub(registry=ExchangeRegistry())
    out = io.StringIO()
    console = Console(file=out, width=120, height=30, force_terminal=True, color_system=None)
    view = LiveView(hub, "hub test", console=console)
    view.attach()
    sink = hub.event_processor().sink_for("feed")
    for i in range(50):
        sink.trade(f"S{i:02d}", px("100.25"), px("1"), Side.BUY, NOW, NOW)
    view.start()
    view.refresh()
    assert "\x1b[2J" not in out.getvalue()
    console.size = (70, 12)
    mark = len(out.getvalue())
    view.refresh()
    assert "\x1b[2J" in out.getvalue()[mark:]
    frame = view.layout.render(view.source.collect(), 70, 11)
    assert len(frame.plain.splitlines()) <= 11
    view.close()


def test_live_view_saves_its_last_frame_as_svg(tmp_path: Path) -> None:
    hub = ExchangeHub(registry=ExchangeRegistry())
    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True)
    target = tmp_path / "frame.svg"
    view = LiveView(hub, "hub test", console=console, svg=str(target))
    view.attach()
    sink = hub.event_processor().sink_for("feed")
    sink.trade("BTCUSDT", px("59999.25"), px("0.015"), Side.BUY, NOW, NOW)
    view.start()
    view.close()
    text = svg_text(target)
    assert "59999.25" in text and "BTCUSDT" in text


def svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()  # valid XML, or this raises
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return "".join(root.itertext()).replace("\xa0", " ")


# -- a real hub: refused and quiet symbols of a real supervisor -----------------------
@pytest.fixture
async def line_server() -> AsyncIterator[LineServer]:
    srv = LineServer()
    async with anyio.create_task_group() as tg:
        await tg.start(srv.serve)
        yield srv
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_real_connection_shows_latency_refused_and_quiet_symbols(
    line_server: LineServer,
) -> None:
    line_server.refuse = {"CCC": "unknown symbol"}
    line_server.mute_symbols = {"BBB"}
    reg = ExchangeRegistry()
    reg.register(Plugin(), name="lineproto")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    cfg = ExchangeConfig(
        protocol="lineproto",
        endpoint=f"127.0.0.1:{line_server.port}",
        symbols=["AAA", "BBB", "CCC"],
        credentials=Credentials(username="u", password="pw"),
        stale_after_ms=150,
    )
    async with ExchangeHub(bus, registry=reg) as hub:
        console = Console(file=io.StringIO(), width=80, height=24, record=True)
        view = LiveView(hub, "hub test", console=console)
        view.attach()
        await hub.connect_exchange("line_feed_with_a_long_name", cfg)
        sup = hub.connections()["line_feed_with_a_long_name"]
        await rec.wait_for(lambda: sup.quiet_symbols == {"BBB"}, 10, "BBB to be quiet")
        await rec.wait_for(
            lambda: bool(per_exchange_latency(hub, "line_feed_with_a_long_name")),
            10,
            "latency samples (one per 64 ticks)",
        )
        console.print(view.render())
        text = console.export_text()
        view.close()
    lines = text.splitlines()
    assert len(lines) <= 23
    assert "CCC (unknown symbol)" in text and "quiet: BBB" in text
    row = next(ln for ln in lines if ln.startswith("line_feed"))
    assert "µs" in row or "ms" in row  # its own latency
    trade = view.last.trades[("line_feed_with_a_long_name", "AAA")]
    whole, digits = fixed_parts(trade.price, 3)
    assert any(f"{whole}.{digits}" in ln for ln in lines if " AAA " in ln)
    assert rec.of(ConnectionStateChanged)


def per_exchange_latency(hub: ExchangeHub, name: str) -> dict[str, int]:
    stats = hub.event_processor().get_stats().per_exchange.get(name)
    return stats.latency_ns if stats is not None else {}


# -- the command --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clitest_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = tmp_path_factory.mktemp("site")
    _dist(site, "hub-plugin-clitest", "clitest_plugin", PLUGIN_SOURCE, "clitest")
    yield site


def test_demo_svg_writes_the_last_frame(clitest_site: Path, tmp_path: Path) -> None:
    target = tmp_path / "demo.svg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLITEST_")}
    # the sources under test stay importable (PYTHONPATH of this run), and the plugin
    inherited = [
        os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    env["PYTHONPATH"] = os.pathsep.join([str(clitest_site), *inherited])
    env.update(COLUMNS="100", LINES="30")
    res = subprocess.run(
        hub_cmd("demo", "--plugins", "clitest", "--duration", "2", "--svg", str(target)),
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    text = svg_text(target)
    assert "clitest" in text and "AAA" in text and "BBB" in text
    assert not re.search(r"\d…|…\d", text)
    bad = subprocess.run(
        hub_cmd("demo", "--svg", str(tmp_path / "missing" / "x.svg")),
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert bad.returncode == 2 and "no such directory" in bad.stderr
