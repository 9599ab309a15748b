"""The simulator kit (``hub_core.simulation``): the loopback guard, the market model, and
``LoopbackVenue`` with its async faults, through a small line-protocol venue over real
TCP on 127.0.0.1 (the example of sdk-docs/simulation.md)."""

from __future__ import annotations

import inspect
import itertools
import statistics
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import hub_core.simulation as sim
from hub_core.errors import ConfigError
from hub_core.simulation import (
    ASK,
    BID,
    CANCEL,
    PRICE_SCALE,
    Instrument,
    LoopbackVenue,
    MarketModel,
    MarketUpdate,
    Regime,
    VenueClient,
    VenueFaults,
    _loopback,
    _market,
    _options,
    _venue,
    require_loopback,
)
from hub_core.testing import SimulatorHandle

TICK = PRICE_SCALE // 100


# -- the example venue: a line protocol ---------------------------------------------------------
class LineClient(VenueClient[str]):
    """A session: its own sequence numbers on every data line."""

    def __init__(self, venue: LoopbackVenue[Any], link: sim.ClientLink) -> None:
        super().__init__(venue, link)
        self.seq = 0

    def line(self, text: str) -> None:
        self.seq += 1
        self.send(f"{self.seq} {text}\n")


class LineVenue(LoopbackVenue[LineClient]):
    """``LOGIN user password`` -> ``OK`` | ``DENIED``; ``SUB sym`` -> ``ACK sym`` | ``NAK
    sym``; ``UNSUB sym``; data lines ``<seq> T sym price size side`` and ``<seq> HB``."""

    name = "line"

    def __init__(
        self,
        symbols: Sequence[str] = ("AAA", "BBB"),
        rate: float = 200.0,
        *,
        seed: int | None = None,
        heartbeat_s: float | None = 1.0,
        password: str = "pw",
        host: str = "127.0.0.1",
    ) -> None:
        market = MarketModel([Instrument(s, 100 * PRICE_SCALE, TICK) for s in symbols], seed=seed)
        super().__init__(market, rate, host=host, heartbeat_s=heartbeat_s)
        self.password = password

    def new_client(self, link: sim.ClientLink) -> LineClient:
        return LineClient(self, link)

    async def serve_client(self, client: LineClient) -> None:
        buffer = b""
        while data := await client.receive_bytes():
            *lines, buffer = (buffer + data).split(b"\n")
            for raw in lines:
                self.on_line(client, raw.decode().split())

    def on_line(self, client: LineClient, words: list[str]) -> None:
        match words:
            case ["LOGIN", _user, password]:
                if self.credentials_refused or password != self.password:
                    client.send("DENIED\n")
                    client.close()  # after the DENIED is written
                else:
                    client.established = True
                    client.send("OK\n")
            case ["SUB", symbol] if client.established:
                if symbol not in self.symbols or self.symbol_refused(symbol):
                    client.send(f"NAK {symbol}\n")
                else:
                    client.subscriptions.add(symbol)
                    client.send(f"ACK {symbol}\n")
            case ["UNSUB", symbol]:
                client.subscriptions.discard(symbol)
            case ["BOOM"]:
                raise RuntimeError("a bug in one session")
            case _:
                client.send("ERR\n")

    def heartbeat(self, client: LineClient) -> None:
        client.line("HB")

    def on_market(self, update: MarketUpdate, ts: int) -> None:
        t = update.trade
        if t is None:
            return
        for c in self.connected():
            if update.symbol in c.subscriptions:
                c.line(f"T {update.symbol} {t.price} {t.size} {t.side}")

    async def send_malformed(self) -> None:
        for c in self.connected():
            c.send("T ???\n")

    async def skip_sequence(self) -> None:
        for c in self.connected():
            c.seq += 1


# -- a client of it -----------------------------------------------------------------------------
class LineReader:
    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.closed = False
        self._buffer = b""

    async def run(self) -> None:
        try:
            while True:
                data = await self.stream.receive()
                *lines, self._buffer = (self._buffer + data).split(b"\n")
                self.lines.extend(x.decode() for x in lines)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            self.closed = True

    async def send(self, text: str) -> None:
        await self.stream.send(text.encode() + b"\n")

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate():  # noqa: ASYNC110 - plain state, no event to wait on
                await anyio.sleep(0.01)

    def data(self, kind: str) -> list[list[str]]:
        out = []
        for line in self.lines:
            words = line.split()
            if len(words) > 1 and words[0].isdigit() and words[1] == kind:
                out.append(words)
        return out


@asynccontextmanager
async def client_of(venue: LineVenue, login: bool = True) -> AsyncIterator[LineReader]:
    async with (
        await anyio.connect_tcp("127.0.0.1", venue.port) as stream,
        anyio.create_task_group() as tg,
    ):
        reader = LineReader(stream)
        tg.start_soon(reader.run)
        if login:
            await reader.send("LOGIN me pw")
            await reader.until(lambda: "OK" in reader.lines)
        yield reader
        tg.cancel_scope.cancel()


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- where a simulator listens ------------------------------------------------------------------
def test_require_loopback() -> None:
    assert require_loopback("127.0.0.1") == "127.0.0.1"
    assert require_loopback("::1") == "::1"
    assert require_loopback("localhost") == "127.0.0.1"
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com", ""):
        with pytest.raises(sim.NotLoopbackError, match="loopback only") as info:
            require_loopback(host)
        assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
        assert "--host 127.0.0.1" in str(info.value)
    with pytest.raises(ValueError, match="loopback"):
        LineVenue(host="0.0.0.0")
    assert sim.host_port("::1", 5) == "[::1]:5" and sim.host_port("127.0.0.1", 5) == "127.0.0.1:5"


def test_the_facade_exports_exactly_what_the_submodules_declare() -> None:
    declared = {
        *_loopback.__all__,
        *_market.__all__,
        *_options.__all__,
        *_venue.__all__,
    }
    wire = {
        "PRICE_SCALE",
        "UNDEF_PRICE",
        "UNDEF_TIMESTAMP",
        "BookClear",
        "BookSnapshot",
        "BookUpdate",
        "Quote",
        "Side",
        "Trade",
        "format_fixed",
        *(n for n in sim.__all__ if n.startswith("encode_")),
    }
    assert set(sim.__all__) == declared | wire
    assert len(sim.__all__) == len(set(sim.__all__))
    for name in sim.__all__:
        assert getattr(sim, name) is not None


# -- the market model ---------------------------------------------------------------------------
def _model(seed: int | None = 1, **kw: Any) -> MarketModel:
    return MarketModel(
        [
            Instrument("ES", 5000 * PRICE_SCALE, PRICE_SCALE // 4, **kw),
            Instrument("NQ", 18000 * PRICE_SCALE, PRICE_SCALE // 4, **kw),
        ],
        seed=seed,
    )


def test_the_same_seed_gives_the_same_market_whatever_else_is_stepped() -> None:
    a, b = _model(7), _model(7)
    first = [a.step("ES") for _ in range(500)]
    for _ in range(123):
        b.step("NQ")  # another symbol stepped in between changes nothing of ES
    assert [b.step("ES") for _ in range(500)] == first
    assert a.trades("ES") == b.trades("ES") and a.trades("ES")
    c = _model(8)
    assert [c.step("ES") for _ in range(500)] != first
    assert a.book("ES").levels() == b.book("ES").levels()


def test_quotes_trades_and_levels_keep_their_rules() -> None:
    model = _model(3)
    inst = model.book("ES").instrument
    mirror: dict[str, dict[int, int]] = {BID: {}, ASK: {}}
    bids, asks = model.book("ES").levels()
    mirror[BID], mirror[ASK] = dict(bids), dict(asks)
    trades = buys = 0
    for _ in range(20_000):
        book = model.book("ES")
        bid, _, ask, _ = book.top()
        before = {BID: dict(book.bids), ASK: dict(book.asks)}
        update = model.step("ES")
        if update.trade is not None:
            t = update.trade
            trades += 1
            taken = ASK if t.side == BID else BID
            # the aggressor buys at the ask or sells at the bid, never more than rests there
            assert t.price == (ask if t.side == BID else bid)
            assert 0 < t.size <= before[taken][t.price]
            assert t.size % inst.lot == 0 and t.trade_id == book.trade_count
            buys += t.side == BID
        for ch in update.changes:
            if ch.action == CANCEL:
                assert ch.size == 0 and ch.price in mirror[ch.side]
                del mirror[ch.side][ch.price]
            else:
                assert ch.size > 0 and ch.size % inst.lot == 0
                assert (ch.price in mirror[ch.side]) == (ch.action == sim.MODIFY)
                mirror[ch.side][ch.price] = ch.size
        # the changes are exactly what happened to the book
        assert mirror[BID] == book.bids and mirror[ASK] == book.asks
        bid, _, ask, _ = book.top()
        assert 0 < bid < ask and (ask - bid) >= inst.tick
        assert all(p % inst.tick == 0 for p in [*book.bids, *book.asks])
        assert len(book.bids) == len(book.asks) == inst.depth
    assert 0.2 < trades / 20_000 < 0.5
    assert 0.3 < buys / trades < 0.7
    assert model.trades("ES")[-1] == model.book("ES").last_trade


def test_top_changed_says_whether_the_top_of_book_moved() -> None:
    model = _model(5)
    for _ in range(2000):
        top = model.book("NQ").top()
        update = model.step("NQ")
        assert update.top_changed == (model.book("NQ").top() != top)
        assert update.top == model.book("NQ").top()


def test_volatility_moves_between_regimes() -> None:
    model = _model(11)
    steps: dict[str, list[float]] = {"calm": [], "volatile": []}
    switches = 0
    last = model.book("ES").regime
    for _ in range(40_000):
        book = model.book("ES")
        fair = book.fair
        model.step("ES")
        steps[book.regime.name].append(abs(book.fair - fair))
        switches += book.regime is not last
        last = book.regime
    assert switches >= 10, "the regime must switch"
    assert len(steps["volatile"]) > 1000 and len(steps["calm"]) > len(steps["volatile"])
    assert statistics.mean(steps["volatile"]) > 2 * statistics.mean(steps["calm"])


def test_one_regime_model_and_bad_parameters() -> None:
    calm = Regime("steady", 1.0, 0.3, 10.0)
    model = MarketModel([Instrument("X", 100 * PRICE_SCALE, TICK)], seed=1, regimes=[calm])
    for _ in range(500):
        model.step("X")
    assert model.book("X").regime is calm
    with pytest.raises(ValueError, match="price must be above"):
        Instrument("X", TICK, TICK)
    with pytest.raises(ValueError, match="tick and lot"):
        Instrument("X", PRICE_SCALE, 0)
    with pytest.raises(ValueError, match="level_lots"):
        Instrument("X", PRICE_SCALE, TICK, level_lots=(5, 1))
    with pytest.raises(ValueError, match="twice"):
        MarketModel([Instrument("X", PRICE_SCALE, TICK)] * 2)
    with pytest.raises(ValueError, match="regime"):
        MarketModel([], regimes=[])
    with pytest.raises(ValueError, match="trade_share"):
        Regime("bad", 1.0, 2.0, 10.0)


def test_steps_due_paces_the_clock_and_never_bursts() -> None:
    model = _model(2)
    assert model.steps_due("ES", 0.02, 100.0) == 2
    got = sum(model.steps_due("ES", 0.003, 100.0) for _ in range(100))
    assert 29 <= got <= 30  # the fraction of a step carries over (float sums)
    assert model.steps_due("ES", 60.0, 100.0) == 101  # after a pause: no burst
    assert model.steps_due("ES", 1.0, 0.0) == 0


def test_a_level_put_by_hand_stays_until_put_again() -> None:
    model = _model(4)
    book = model.book("ES")
    far = min(book.bids) - 50 * book.instrument.tick
    update = model.set_level("ES", BID, far, 7 * PRICE_SCALE)
    assert [(c.price, c.size, c.action) for c in update.changes] == [(far, 7 * PRICE_SCALE, "A")]
    for _ in range(3000):
        model.step("ES")
        assert model.book("ES").bids.get(far) == 7 * PRICE_SCALE
    update = model.set_level("ES", BID, far, 0)
    assert [(c.price, c.action) for c in update.changes] == [(far, "C")]
    assert far not in book.bids and len(book.bids) == book.instrument.depth
    with pytest.raises(ValueError, match="cross"):
        model.set_level("ES", BID, book.best_ask, PRICE_SCALE)
    with pytest.raises(ValueError, match="side"):
        model.set_level("ES", "X", far, PRICE_SCALE)


# -- the venue ----------------------------------------------------------------------------------
async def test_a_venue_is_a_simulator_handle_with_async_faults() -> None:
    venue = LineVenue()
    assert isinstance(venue, VenueFaults) and isinstance(venue, SimulatorHandle)
    faults = ("drop_connections", "stall", "resume", "send_malformed", "skip_sequence",
              "refuse_credentials", "refuse_symbol")  # fmt: skip
    for fault in faults:
        assert inspect.iscoroutinefunction(getattr(venue, fault)), fault


async def test_login_subscribe_and_exactly_the_trades_sent() -> None:
    async with LineVenue(rate=300, seed=5) as venue, client_of(venue) as c:
        assert venue.session_count == 1 and venue.clients == 1
        await c.send("SUB AAA")
        await c.until(lambda: len(c.data("T")) >= 20)
        assert venue.subscriptions() == [{"AAA"}]
        got = [(int(w[3]), int(w[4]), w[5]) for w in c.data("T")]
        sent = venue.sent_trades("AAA")
        # a contiguous run of what was sent (the same trade may recur: match the run)
        assert any(sent[i : i + len(got)] == got for i, t in enumerate(sent) if t == got[0])
        assert {w[2] for w in c.data("T")} == {"AAA"}
        await c.send("UNSUB AAA")
        await c.until(lambda: venue.subscriptions() == [set()])
    assert venue.clients == 0


async def test_one_writer_never_interleaves_messages() -> None:
    async with LineVenue(rate=0) as venue, client_of(venue) as c:
        (client,) = venue.connected()

        async def burst(tag: str) -> None:
            for i in range(200):
                client.line(f"T {tag} {i} {'x' * 3000}")
                if i % 10 == 0:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for tag in ("a", "b", "c"):
                tg.start_soon(burst, tag)
        await c.until(lambda: len(c.data("T")) == 600, timeout=10)
        for words in c.data("T"):
            assert len(words) == 5 and words[4] == "x" * 3000
        seqs = [int(w[0]) for w in c.data("T")]
        assert seqs == sorted(seqs) == list(range(seqs[0], seqs[0] + 600))
        for tag in ("a", "b", "c"):  # each sender's order is kept
            assert [int(w[3]) for w in c.data("T") if w[2] == tag] == list(range(200))


async def test_idle_sessions_get_heartbeats_and_busy_ones_do_not() -> None:
    async with LineVenue(rate=0, heartbeat_s=0.2) as venue, client_of(venue) as c:
        await c.until(lambda: len(c.data("HB")) >= 3)
        assert all(int(w[0]) > 0 for w in c.data("HB"))
        venue.rate = 400
        await c.send("SUB AAA")
        await c.until(lambda: len(c.data("T")) >= 20)
        mark = len(c.data("HB"))
        await anyio.sleep(0.5)
        assert len(c.data("HB")) <= mark + 1  # data flows: no idle heartbeat due
    async with LineVenue(rate=0, heartbeat_s=0.1) as venue, client_of(venue, login=False) as c:
        await anyio.sleep(0.4)
        assert c.data("HB") == []  # no heartbeat before the handshake


async def test_drop_connections_resets_every_client_and_keeps_listening() -> None:
    async with LineVenue(rate=100) as venue:
        async with client_of(venue) as a, client_of(venue) as b:
            assert await venue.drop_connections() == 2
            await a.until(lambda: a.closed and b.closed)
        async with client_of(venue) as again:
            assert venue.connections_accepted == 3 and venue.session_count == 1
            await again.send("SUB BBB")
            await again.until(lambda: bool(again.data("T")))


async def test_stall_sends_nothing_then_everything_queued() -> None:
    async with LineVenue(rate=300, heartbeat_s=0.1) as venue, client_of(venue) as c:
        await c.send("SUB AAA")
        await c.until(lambda: len(c.data("T")) >= 5)
        await venue.stall()
        assert venue.stalled
        await anyio.sleep(0.1)
        mark = len(c.lines)
        await c.send("SUB BBB")
        await anyio.sleep(0.4)
        assert len(c.lines) == mark, "a stalled venue says nothing"
        assert venue.subscriptions() == [{"AAA", "BBB"}]  # but it still reads
        await venue.resume()
        await c.until(lambda: "ACK BBB" in c.lines and any(w[2] == "BBB" for w in c.data("T")))
        seqs = [int(line.split()[0]) for line in c.lines if line.split()[0].isdigit()]
        assert seqs == list(range(1, len(seqs) + 1)), "nothing lost by the stall"


async def test_malformed_and_skipped_sequence() -> None:
    async with LineVenue(rate=300) as venue, client_of(venue) as c:
        await c.send("SUB AAA")
        await c.until(lambda: len(c.data("T")) >= 3)
        await venue.send_malformed()
        await venue.skip_sequence()
        await c.until(lambda: "T ???" in c.lines and len(c.data("T")) >= 10)
        seqs = [int(w[0]) for w in c.data("T")]
        holes = [b - a for a, b in itertools.pairwise(seqs) if b - a != 1]
        assert holes == [2]


async def test_refused_credentials_and_symbols() -> None:
    async with LineVenue(rate=100) as venue:
        await venue.refuse_credentials()
        async with client_of(venue, login=False) as c:
            await c.send("LOGIN me pw")
            await c.until(lambda: c.closed)
            assert c.lines == ["DENIED"]
        await venue.refuse_credentials(False)
        await venue.refuse_symbol("BBB")
        async with client_of(venue) as c:
            await c.send("SUB BBB")
            await c.send("SUB AAA")
            await c.until(lambda: "NAK BBB" in c.lines and "ACK AAA" in c.lines)
            await venue.refuse_symbol("BBB", on=False)
            await c.send("SUB BBB")
            await c.until(lambda: "ACK BBB" in c.lines)
            assert venue.subscriptions() == [{"AAA", "BBB"}]


async def test_refuse_then_accept_connections_on_the_same_port() -> None:
    async with LineVenue(rate=100) as venue, client_of(venue) as live:
        port = venue.port
        venue.refuse_connections()
        await anyio.sleep(0.05)
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)
        await live.send("SUB AAA")
        await live.until(lambda: len(live.data("T")) >= 3)  # the live session goes on
        venue.accept_connections()
        with anyio.fail_after(5):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                    break
                except OSError:
                    await anyio.sleep(0.02)
        await stream.aclose()
        assert venue.port == port


async def test_a_failing_session_ends_alone() -> None:
    async with LineVenue(rate=100) as venue, client_of(venue) as good:
        await good.send("SUB AAA")
        async with client_of(venue) as bad:
            await bad.send("BOOM")
            await bad.until(lambda: bad.closed)
        n = len(good.data("T"))
        await good.until(lambda: len(good.data("T")) > n + 3)
        assert venue.clients == 1


async def test_stop_reading_blocks_the_client_not_the_feed() -> None:
    async with LineVenue(rate=300) as venue, client_of(venue) as c:
        await c.send("SUB AAA")
        venue.stop_reading()
        await anyio.sleep(0.05)
        await c.send("SUB BBB")
        n = len(c.data("T"))
        await c.until(lambda: len(c.data("T")) > n + 5)
        assert "ACK BBB" not in c.lines  # not read yet
        venue.resume_reading()
        await c.until(lambda: "ACK BBB" in c.lines)


async def test_queued_messages_are_flushed_before_a_polite_close() -> None:
    async with LineVenue(rate=0) as venue, client_of(venue) as c:
        (client,) = venue.connected()
        for i in range(100):
            client.line(f"T X {i}")
        client.close()
        await c.until(lambda: c.closed)
        assert [int(w[3]) for w in c.data("T")] == list(range(100))
        await client.drained()
        assert client.pending == 0 and client.backlog == 0


# -- the documentation ------------------------------------------------------------------------
DOC = Path(__file__).resolve().parents[2] / "sdk-docs" / "simulation.md"


def test_every_public_name_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in sim.__all__ if f"`{name}" not in text]
    assert not missing, (
        f"names of hub_core.simulation missing from sdk-docs/simulation.md: {missing}"
    )


async def test_the_documented_example_runs() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = text[text.index("## Example") :]
    code = example[example.index("```python\n") + 10 :]
    code = code[: code.index("```")]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the page's own code, as printed
    venue_class = namespace["LineVenue"]
    async with venue_class(rate=300, seed=1) as venue:
        assert isinstance(venue, SimulatorHandle)
        async with client_of(venue) as c:
            await c.send("SUB AAA")
            await c.until(lambda: len(c.data("T")) >= 3)
            await venue.skip_sequence()
            await venue.refuse_symbol("BBB")
            await c.send("SUB BBB")
            await c.until(lambda: "NAK BBB" in c.lines)
