"""One frame of the live view, fitted to the terminal without ever cutting a number.

``FrameLayout.render(data, width, height)`` turns a ``FrameData`` snapshot
into at most ``height`` lines, none wider than ``width``:

- a number is never shortened. When a table is too wide, names (connections,
  symbols) are shortened with an ellipsis first, then the lower-priority
  columns are left out (what a left-out connection column held moves to a
  note under the table), and notes wrap at word boundaries;
- prices and sizes are exact (fixed point printed with integer arithmetic,
  never through a float) and padded to each instrument's decimals, the most
  seen for it so far, so the decimal points of a column line up and a price
  keeps its width from frame to frame;
- a column never gets narrower while the terminal keeps its width (the
  layout remembers the widest content of each column);
- rows that do not fit the height are counted in a ``+N more`` line, so the
  frame is never taller than the terminal (a taller one leaves pieces of old
  frames behind when rich redraws it).

Nothing here reads the hub: ``FrameData`` is plain data, so a frame can be
laid out from recorded or made-up data (the tests do).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len, set_cell_size
from rich.text import Text

from hub_core.fixed import PRICE_SCALE
from hub_core.status import ConnectionDetails
from hub_core.ticks import ConnectionState, Quote, Trade

ELLIPSIS = "…"
NAME_SOFT_MIN = 12
"""Names are shortened to this many cells before any column is left out."""
NAME_MIN = 5
"""...and to this many before a high-priority column is left out."""
KEEP = 100
"""Columns of at least this priority are left out only once names are at ``NAME_MIN``."""
MIN_SYMBOL_ROWS = 1
"""Symbol rows kept in view when problem notes would take the rest of the height."""
MAX_SYMBOL_ROWS = 40
"""At most this many symbol rows, however tall the terminal."""
WIDE_GAP_FROM = 100
"""Terminal width from which columns are two spaces apart (one below)."""
UNDEF_PRICE = 9_223_372_036_854_775_807
"""DBN's "no price" (i64 max): shown as ``-``."""

STATE_STYLE = {
    ConnectionState.CONNECTED: "bold green",
    ConnectionState.CONNECTING: "yellow",
    ConnectionState.RECONNECTING: "yellow",
    ConnectionState.STALE: "dark_orange",
    ConnectionState.DEAD: "bold red",
    ConnectionState.AUTH_FAILED: "bold red",
    ConnectionState.CLOSED: "dim",
    "quiet": "cyan",
}


# -- plain formatting ------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    """``1:02:03`` / ``02:03``."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def format_ns(ns: int) -> str:
    """A latency in the unit that keeps it short: ``850ns``, ``4.1µs``, ``138µs``, ``1.2ms``."""
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 10_000:
        return f"{ns / 1_000:.1f}µs"
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f}µs"
    if ns < 100_000_000:
        return f"{ns / 1_000_000:.1f}ms"
    if ns < 10_000_000_000:
        return f"{ns / 1_000_000:.0f}ms"
    return f"{ns / 1_000_000_000:.0f}s"


def format_age(ns: int) -> str:
    """How long ago, from a duration in ns: ``0.2s``, ``12s``, ``03:05``."""
    s = max(0, ns) / 1e9
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{s:.0f}s"
    return format_duration(s)


def decimals_of(value: int) -> int:
    """Decimal places a fixed-point int needs to be shown exactly (0-9)."""
    frac = abs(value) % PRICE_SCALE
    if not frac:
        return 0
    digits = f"{frac:09d}".rstrip("0")
    return len(digits)


def fixed_parts(value: int, decimals: int) -> tuple[str, str]:
    """``(integer part with sign, fraction digits)`` of a fixed-point int at ``decimals``
    places; ``decimals`` must be at least ``decimals_of(value)`` (nothing is rounded)."""
    whole, frac = divmod(abs(value), PRICE_SCALE)
    sign = "-" if value < 0 else ""
    digits = f"{frac:09d}"[:decimals] if decimals else ""
    return f"{sign}{whole}", digits


# -- text fitting ------------------------------------------------------------------------
def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells: whole, or cut with an ellipsis.

    For names only. The cut never leaves digits next to the ellipsis (``cme_2025_es``
    becomes ``cme…``, not ``cme_20…``), so a shortened name never reads as a number.
    """
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = set_cell_size(text, width - 1).rstrip()
    trimmed = head.rstrip("0123456789.,:-_/ ")
    return (trimmed or head) + ELLIPSIS


def shorten_words(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, cut after a whole word (`` …`` marks the cut)."""
    if cell_len(text) <= width:
        return text
    out = ""
    for word in text.split(" "):
        candidate = f"{out} {word}" if out else word
        if cell_len(candidate) + 2 > width:
            break
        out = candidate
    if not out:
        return shorten(text, width)
    return out + " " + ELLIPSIS


def wrap_offsets(text: str, width: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each line of ``text`` wrapped at spaces to ``width`` cells.

    A word longer than ``width`` is split (only on terminals narrower than one word).
    """
    width = max(1, width)
    out: list[tuple[int, int]] = []
    start = 0
    n = len(text)
    while start < n:
        if cell_len(text[start:]) <= width:
            out.append((start, n))
            break
        end = start
        cells = 0
        last_space = -1
        while end < n:
            c = cell_len(text[end])
            if cells + c > width:
                break
            if text[end] == " ":
                last_space = end
            cells += c
            end += 1
        if end < n and text[end] == " ":
            last_space = end
        cut = last_space if last_space > start else max(end, start + 1)
        out.append((start, cut))
        start = cut
        while start < n and text[start] == " ":
            start += 1
    return out


def wrap_text(text: Text, width: int, indent: int = 2) -> list[Text]:
    """``text`` wrapped at word boundaries; lines after the first indented by ``indent``."""
    first = wrap_offsets(text.plain, width)
    if len(first) <= 1:
        return [text]
    lines = [text[first[0][0] : first[0][1]]]
    rest = text[first[0][1] :]
    rest = rest[len(rest.plain) - len(rest.plain.lstrip(" ")) :]
    for start, end in wrap_offsets(rest.plain, width - indent):
        lines.append(Text(" " * indent) + rest[start:end])
    return lines


def wrap_segments(segments: Sequence[Text], width: int, sep: str = "   ") -> list[Text]:
    """Segments joined by ``sep``, a new line where the next would not fit (never split)."""
    lines: list[Text] = []
    line = Text()
    for seg in segments:
        if line.plain and cell_len(line.plain) + cell_len(sep) + cell_len(seg.plain) > width:
            lines.append(line)
            line = Text()
        if line.plain:
            line.append(sep)
        line.append_text(seg)
    if line.plain:
        lines.append(line)
    return lines


# -- tables ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column of one of the view's tables."""

    key: str
    header: str
    short: str = ""
    """The header on a narrow terminal (default: ``header``)."""
    priority: int = KEEP
    """Lower is left out first when the table is too wide."""
    name: bool = False
    """A name: may be shortened with an ellipsis. Every other cell is shown whole."""
    right: bool = True


Cell = tuple[str, str]
"""A cell's text and rich style."""


@dataclass
class Fitted:
    """The columns a table shows at some width, with their widths."""

    columns: list[Column]
    widths: dict[str, int]
    headers: dict[str, str]
    left_out: list[Column]
    gap: int

    def total(self) -> int:
        """Cells the table takes: the shown columns and the gaps between them."""
        return sum(self.widths[c.key] for c in self.columns) + self.gap * max(
            0, len(self.columns) - 1
        )


def fit_columns(
    columns: Sequence[Column], content: Mapping[str, int], width: int, gap: int
) -> Fitted:
    """Choose which ``columns`` to show, and how wide, for ``width`` cells.

    ``content`` is each column's widest cell. Order of resort: shorten names to
    ``NAME_SOFT_MIN``, use short headers, leave out columns below ``KEEP`` (lowest
    priority first), shorten names to ``NAME_MIN``, leave out the rest but the first.
    """

    def header(c: Column, short: bool) -> str:
        return c.short if short and c.short else c.header

    def natural(c: Column, short: bool) -> int:
        return max(content.get(c.key, 0), cell_len(header(c, short)))

    fit = Fitted(
        columns=list(columns),
        widths={c.key: natural(c, False) for c in columns},
        headers={c.key: c.header for c in columns},
        left_out=[],
        gap=gap,
    )

    def shrink_names(floor: int) -> None:
        for c in sorted((c for c in fit.columns if c.name), key=lambda c: -fit.widths[c.key]):
            excess = fit.total() - width
            if excess <= 0:
                return
            low = max(floor, cell_len(fit.headers[c.key]))
            fit.widths[c.key] -= max(0, min(excess, fit.widths[c.key] - low))

    def leave_out(below: int | None) -> None:
        # lowest priority first; of equal ones the rightmost
        order = sorted(enumerate(fit.columns), key=lambda ic: (ic[1].priority, -ic[0]))
        for _, c in order:
            if fit.total() <= width:
                return
            if below is not None and c.priority >= below:
                continue
            if c is fit.columns[0]:
                continue
            fit.columns.remove(c)
            fit.left_out.append(c)

    if fit.total() <= width:
        return fit
    shrink_names(NAME_SOFT_MIN)
    if fit.total() > width:
        for c in fit.columns:
            fit.headers[c.key] = header(c, True)
            fit.widths[c.key] = (
                min(fit.widths[c.key], natural(c, True)) if c.name else natural(c, True)
            )
        leave_out(KEEP)
        full = dict(fit.widths)
        for c in fit.columns:
            full[c.key] = fit.widths[c.key] if c.name else natural(c, False)
        if sum(full[c.key] for c in fit.columns) + gap * (len(fit.columns) - 1) <= width:
            # what is left fits with the full headers after all
            fit.widths = full
            fit.headers = {c.key: c.header for c in columns}
    if fit.total() > width:
        shrink_names(NAME_MIN)
        leave_out(None)
    if fit.total() > width and fit.columns:
        # a terminal narrower than one column: the first (a name) takes what there is
        fit.widths[fit.columns[0].key] = max(1, width)
    # keep the left-out columns in table order, for the notes that list them
    order = {c.key: i for i, c in enumerate(columns)}
    fit.left_out.sort(key=lambda c: order[c.key])
    return fit


def pad(text: str, width: int, right: bool) -> str:
    """``text`` padded to ``width`` cells (never cut)."""
    space = " " * max(0, width - cell_len(text))
    return space + text if right else text + space


def table_lines(fit: Fitted, rows: Sequence[Mapping[str, Cell]]) -> tuple[Text, list[Text]]:
    """The header line and one line per row, laid out as ``fit`` says."""
    sep = " " * fit.gap
    head = Text()
    for i, c in enumerate(fit.columns):
        if i:
            head.append(sep)
        w = fit.widths[c.key]
        head.append(pad(shorten(fit.headers[c.key], w), w, c.right), "bold")
    lines: list[Text] = []
    for row in rows:
        line = Text()
        for i, c in enumerate(fit.columns):
            if i:
                line.append(sep)
            w = fit.widths[c.key]
            text, style = row.get(c.key, ("", ""))
            if c.name:
                text = shorten(text, w)
            line.append(pad(text, w, c.right), style)
        lines.append(line)
    return head, lines


# -- the frame's data ---------------------------------------------------------------------
@dataclass(frozen=True)
class FrameData:
    """Everything one frame shows, as of one moment."""

    title: str
    connections: Sequence[ConnectionDetails]
    rates: Mapping[str, float] = field(default_factory=dict)
    """msgs/s per connection."""
    trades: Mapping[tuple[str, str], Trade] = field(default_factory=dict)
    """The last trade per (connection, symbol)."""
    quotes: Mapping[tuple[str, str], Quote] = field(default_factory=dict)
    latency_ns: Mapping[str, int] = field(default_factory=dict)
    """The hub's receive-to-callback percentiles over every connection."""
    dropped: int = 0
    conflated: int = 0
    handler_errors: int = 0
    uptime_s: float = 0.0
    status: str = ""
    """The status line (last warning and count); empty for none."""
    sinks: Sequence[tuple[str, str, int, int]] = ()
    """Each ``[sinks.NAME]``: (name, state, ticks sent, ticks dropped)."""
    now_ns: int = field(default_factory=time.time_ns)


CONNECTION_COLUMNS = (
    Column("connection", "connection", "conn", KEEP, name=True, right=False),
    Column("protocol", "protocol", "proto", 10, right=False),
    Column("state", "state", right=False),
    Column("endpoint", "endpoint", priority=5, right=False),
    Column("rate", "msgs/s", "msg/s", 98),
    Column("trades", "trades", priority=97),
    Column("quotes", "quotes", priority=96),
    Column("book", "book", priority=80),
    Column("p50", "p50", priority=40),
    Column("p99", "p99", priority=85),
    Column("age", "age", priority=75),
    Column("gaps", "gaps", priority=70),
    Column("malformed", "malformed", "malf", 50),
    Column("reconnects", "reconnects", "recon", 60),
)
"""The connections table, in display order (priority: lower is left out first)."""

SYMBOL_COLUMNS = (
    Column("connection", "connection", "conn", 60, name=True, right=False),
    Column("symbol", "symbol", "sym", KEEP, name=True, right=False),
    Column("last", "last"),
    Column("size", "size", priority=40),
    Column("side", "side", priority=20),
    Column("bid", "bid"),
    Column("bid_size", "bid size", "bid sz", 30),
    Column("ask", "ask"),
    Column("ask_size", "ask size", "ask sz", 30),
    Column("age", "age", priority=50),
)
"""The last trade and quote per symbol, in display order."""

PRICE_KEYS = ("last", "bid", "ask")
SIZE_KEYS = ("size", "bid_size", "ask_size")
# a left-out connection column with one of these values is not repeated in the notes
_BORING = ("0", "-")


def _note(prefix: str, style: str, body: str) -> Text:
    return Text.assemble((prefix, style), body)


class FrameLayout:
    """Lays frames out; remembers column widths and decimals between frames.

    One per live view: what it remembers is what keeps columns and decimal
    points still from one frame to the next.
    """

    def __init__(self) -> None:
        self.widths: dict[str, int] = {}
        """Widest content seen per ``table.column`` (reset when the terminal narrows)."""
        self.price_decimals: dict[tuple[str, str], int] = {}
        """Decimals per (connection, symbol): the most any of its prices needed so far."""
        self.size_decimals: dict[tuple[str, str], int] = {}
        self._width = 0
        self.fitted: dict[str, Fitted] = {}
        """The last frame's layout of each table (``connections``, ``symbols``)."""

    # -- memory ------------------------------------------------------------------
    def _remember(self, table: str, key: str, width: int) -> int:
        k = f"{table}.{key}"
        w = max(self.widths.get(k, 0), width)
        self.widths[k] = w
        return w

    def _content(
        self, table: str, columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]]
    ) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in columns:
            widest = max((cell_len(r[c.key][0]) for r in rows if c.key in r), default=0)
            out[c.key] = self._remember(table, c.key, widest)
        return out

    def _keep_widths(self, table: str, fit: Fitted) -> None:
        # a column keeps the width it was shown at (a long header included) even when
        # the headers turn short later; names alone may still be shortened
        for c in fit.columns:
            if not c.name:
                self._remember(table, c.key, fit.widths[c.key])

    def _decimals(
        self, memory: dict[tuple[str, str], int], key: tuple[str, str], values: Sequence[int]
    ) -> int:
        d = max([memory.get(key, 0), *(decimals_of(v) for v in values)])
        memory[key] = d
        return d

    # -- the frame ---------------------------------------------------------------------
    def render(self, data: FrameData, width: int, height: int) -> Text:
        """The frame: at most ``height`` lines of at most ``width`` cells."""
        width = max(1, width)
        height = max(1, height)
        if width < self._width:
            self.widths.clear()  # the terminal narrowed: columns may narrow with it
        self._width = width
        gap = 2 if width >= WIDE_GAP_FROM else 1

        title = Text(shorten_words(data.title, width), "bold")
        conn_head, conn_rows, problems, where = self._connections(data, width, gap)
        sym_head, sym_rows, sym_hidden = self._symbols(data, width, gap)
        footer = wrap_segments(self._footer(data), width)
        status = [Text(shorten_words(data.status, width), "yellow")] if data.status else []

        # height: the title, the connections' header, the footer and the status line
        # always; then connection rows, notes and symbol rows share what is left
        room = height - 2 - len(footer) - len(status)
        shown_conns = _take(conn_rows, room, "connections", width)
        room -= len(shown_conns)
        # problem notes (reasons, refused and quiet symbols) before symbol rows, but a
        # few symbol rows (after a blank line and the header) stay in view
        more_sym = len(sym_rows) > MIN_SYMBOL_ROWS or sym_hidden > 0
        keep = 2 + min(len(sym_rows), MIN_SYMBOL_ROWS) + more_sym if sym_rows else 0
        problem_lines = [wrap_text(n, width) for n in problems]
        budget = min(room, max(1, room - keep)) if problems else 0
        shown_problems = _take_notes(problem_lines, budget, width)
        room -= len(shown_problems)
        symbol_part: list[Text] = []
        if sym_rows and room >= keep:
            symbol_part = [
                Text(),
                sym_head,
                *_take(sym_rows, room - 2, "symbols", width, sym_hidden),
            ]
        elif sym_rows and room >= 1:
            symbol_part = [_more(len(sym_rows) + sym_hidden, "symbols", width)]
        room -= len(symbol_part)
        # what left-out columns held: with whatever height is left
        shown_where = _take_notes([wrap_text(n, width) for n in where], room, width)
        lines = [
            title,
            conn_head,
            *shown_conns,
            *shown_problems,
            *shown_where,
            *symbol_part,
            *footer,
            *status,
        ]
        if len(lines) > height:
            # a terminal too short for even the fixed lines: keep the top
            lines = lines[:height]
        out = Text("\n").join(lines)
        out.no_wrap = True
        out.overflow = "crop"
        return out

    def _connections(
        self, data: FrameData, width: int, gap: int
    ) -> tuple[Text, list[Text], list[Text], list[Text]]:
        """The connections' header, a line per connection, the problem notes and the
        notes of what left-out columns held."""
        rows: list[dict[str, Cell]] = []
        problems: list[Text] = []
        for d in data.connections:
            syms = d.symbols
            all_quiet = bool(syms) and all(s == "quiet" for s in syms.values())
            state = "quiet" if all_quiet and d.state == ConnectionState.CONNECTED else d.state
            rows.append(
                {
                    "connection": (d.exchange, ""),
                    "protocol": (d.protocol, ""),
                    "state": (state, STATE_STYLE.get(state, "")),
                    "endpoint": (d.endpoint, ""),
                    "rate": (f"{data.rates.get(d.exchange, 0.0):,.0f}", ""),
                    "trades": (f"{d.trades:,}", ""),
                    "quotes": (f"{d.quotes:,}", ""),
                    "book": (f"{d.book_updates + d.snapshots + d.book_clears:,}", ""),
                    "p50": (_latency_cell(d.latency_ns, "p50"), ""),
                    "p99": (_latency_cell(d.latency_ns, "p99"), ""),
                    "age": (
                        format_age(data.now_ns - d.last_message_ns) if d.last_message_ns else "-",
                        "",
                    ),
                    "gaps": (f"{d.gaps:,}", ""),
                    "malformed": (f"{d.malformed:,}", ""),
                    "reconnects": (f"{d.reconnects:,}", ""),
                }
            )
            style = STATE_STYLE.get(d.state, "")
            # "closed on request" needs no note; every other state but connected does
            if d.reason and d.state not in (ConnectionState.CONNECTED, ConnectionState.CLOSED):
                problems.append(_note(f"{d.exchange} {d.state}: ", style, d.reason))
            refused = {s: v for s, v in syms.items() if v.startswith(("refused:", "error:"))}
            if refused:
                listed = ", ".join(
                    f"{s} ({v.partition(': ')[2] or v})" for s, v in sorted(refused.items())
                )
                problems.append(_note(f"{d.exchange} refused: ", "yellow", listed))
            quiet = sorted(s for s, v in syms.items() if v == "quiet")
            if quiet and not all_quiet:
                problems.append(_note(f"{d.exchange} quiet: ", "cyan", ", ".join(quiet)))
        content = self._content("connections", CONNECTION_COLUMNS, rows)
        fit = fit_columns(CONNECTION_COLUMNS, content, width, gap)
        self._keep_widths("connections", fit)
        self.fitted["connections"] = fit
        head, lines = table_lines(fit, rows)
        # what a left-out column held, under the table: nothing shown is lost
        where: list[Text] = []
        if fit.left_out:
            for d, row in zip(data.connections, rows, strict=True):
                parts = [
                    row[c.key][0]
                    if c.key in ("protocol", "endpoint")
                    else f"{c.header} {row[c.key][0]}"
                    for c in fit.left_out
                    if row[c.key][0] not in _BORING
                ]
                if parts:
                    where.append(_note(f"{d.exchange}: ", "dim", "  ".join(parts)))
        return head, lines, problems, where

    def _symbols(self, data: FrameData, width: int, gap: int) -> tuple[Text, list[Text], int]:
        """The symbols' header, a line per symbol, and how many symbols are past
        ``MAX_SYMBOL_ROWS``."""
        every = sorted(set(data.trades) | set(data.quotes))
        keys = every[:MAX_SYMBOL_ROWS]
        raw_rows: list[tuple[dict[str, int | None], dict[str, str], int, int]] = []
        for key in keys:
            t = data.trades.get(key)
            q = data.quotes.get(key)
            prices: dict[str, int | None] = {
                "last": t.price if t is not None else None,
                "bid": _side(q.bid_price, q.bid_size) if q is not None else None,
                "ask": _side(q.ask_price, q.ask_size) if q is not None else None,
                "size": t.size if t is not None else None,
                "bid_size": q.bid_size
                if q is not None and _side(q.bid_price, q.bid_size) is not None
                else None,
                "ask_size": q.ask_size
                if q is not None and _side(q.ask_price, q.ask_size) is not None
                else None,
            }
            pd = self._decimals(
                self.price_decimals, key, [v for k in PRICE_KEYS if (v := prices[k]) is not None]
            )
            sd = self._decimals(
                self.size_decimals, key, [v for k in SIZE_KEYS if (v := prices[k]) is not None]
            )
            newest = max(t.ts_recv if t is not None else 0, q.ts_recv if q is not None else 0)
            text = {
                "connection": key[0],
                "symbol": key[1],
                "side": t.side if t is not None else "-",
                "age": format_age(data.now_ns - newest) if newest else "-",
            }
            raw_rows.append((prices, text, pd, sd))
        # decimal columns: the integer part right-aligned, the points in one place
        int_w: dict[str, int] = {}
        frac_w: dict[str, int] = {}
        for k in (*PRICE_KEYS, *SIZE_KEYS):
            iw = 0
            fw = 0
            for prices, _, pd, sd in raw_rows:
                v = prices[k]
                if v is None:
                    continue
                d = pd if k in PRICE_KEYS else sd
                iw = max(iw, len(fixed_parts(v, d)[0]))
                fw = max(fw, d)
            int_w[k] = self._remember("symbols", f"{k}.int", iw)
            frac_w[k] = self._remember("symbols", f"{k}.frac", fw)
        rows: list[dict[str, Cell]] = []
        for prices, text, pd, sd in raw_rows:
            row: dict[str, Cell] = {k: (v, "") for k, v in text.items()}
            for k in (*PRICE_KEYS, *SIZE_KEYS):
                v = prices[k]
                fw = frac_w[k]
                full = int_w[k] + (1 + fw if fw else 0)
                if v is None:
                    row[k] = (pad("-", full, True), "dim")
                    continue
                d = pd if k in PRICE_KEYS else sd
                whole, digits = fixed_parts(v, d)
                tail = ("." + digits if d else " " if fw else "") + " " * (fw - d)
                row[k] = (pad(whole, int_w[k], True) + tail, "bold" if k == "last" else "")
            rows.append(row)
        content = self._content("symbols", SYMBOL_COLUMNS, rows)
        fit = fit_columns(SYMBOL_COLUMNS, content, width, gap)
        self._keep_widths("symbols", fit)
        self.fitted["symbols"] = fit
        head, lines = table_lines(fit, rows)
        return head, lines, len(every) - len(keys)

    @staticmethod
    def _footer(data: FrameData) -> list[Text]:
        segs: list[Text] = []
        if data.latency_ns:
            for i, (k, v) in enumerate(data.latency_ns.items()):
                label = k.replace("_", ".")
                segs.append(
                    Text.assemble(("latency ", "bold") if not i else "", f"{label} {format_ns(v)}")
                )
        else:
            segs.append(Text.assemble(("latency ", "bold"), "-"))
        segs.extend(
            Text.assemble((f"{label} ", "bold"), value)
            for label, value in (
                ("dropped", f"{data.dropped:,}"),
                ("conflated", f"{data.conflated:,}"),
                ("handler errors", f"{data.handler_errors:,}"),
                ("uptime", format_duration(data.uptime_s)),
            )
        )
        segs.extend(
            Text.assemble(
                ("sink ", "bold"),
                f"{name} ",
                (state, _SINK_STYLE.get(state, "yellow")),
                f" {sent:,} sent" + (f", {dropped:,} dropped" if dropped else ""),
            )
            for name, state, sent, dropped in data.sinks
        )
        return segs


_SINK_STYLE = {"connected": "green", "dead": "red", "auth_failed": "red"}


def _side(price: int, size: int) -> int | None:
    """A quote side's price, or None when the side is empty."""
    if price == UNDEF_PRICE or (price == 0 and size == 0):
        return None
    return price


def _latency_cell(latency_ns: Mapping[str, int], key: str) -> str:
    v = latency_ns.get(key)
    return format_ns(v) if v is not None else "-"


def _more(n: int, what: str, width: int) -> Text:
    return Text(shorten_words(f"+{n:,} more {what}", width), "dim")


def _take(rows: list[Text], room: int, what: str, width: int, hidden: int = 0) -> list[Text]:
    """``rows`` within ``room`` lines, the last one ``+N more`` when some do not show
    (``hidden``: rows left out before, counted in that line too)."""
    if room <= 0:
        return []
    if len(rows) + (1 if hidden else 0) <= room:
        return [*rows, _more(hidden, what, width)] if hidden else rows
    kept = rows[: room - 1]
    return [*kept, _more(len(rows) - len(kept) + hidden, what, width)]


def _take_notes(notes: list[list[Text]], room: int, width: int) -> list[Text]:
    """Whole notes, in order, within ``room`` lines (the last a ``+N more notes`` line)."""
    total = sum(len(n) for n in notes)
    if total <= room:
        return [line for n in notes for line in n]
    out: list[Text] = []
    for i, n in enumerate(notes):
        if len(out) + len(n) > room - 1:
            if room >= 1:
                out.append(_more(len(notes) - i, "notes", width))
            break
        out.extend(n)
    return out
