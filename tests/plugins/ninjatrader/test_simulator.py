"""The simulator against the plugin's connection and a real sink, and against raw sockets.

Real TCP on loopback only; no mocks. Each fault the simulator can inject is checked for
what the hub must see.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from pydantic import ValidationError

from hub_core import (
    AuthenticationError,
    BookClear,
    BookUpdate,
    ConnectionFailed,
    Credentials,
    ExchangeConfig,
    ExchangeConnection,
    Gap,
    ProtocolError,
    Quote,
    SubscriptionError,
    Trade,
    dbn as core_dbn,
)
from hub_core.errors import ConfigError
from hub_plugin_ninjatrader import NinjaTraderFactory, codec as c, hub_connection_factories
from hub_plugin_ninjatrader.connection import NinjaTraderConnection, split_endpoint
from hub_plugin_ninjatrader.simulator import NinjaTraderSimulator

from .conftest import Collected

pytestmark = pytest.mark.anyio

ES, NQ = "ES 03-26", "NQ 03-26"


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``cond`` (the simulator and the reader run in this same loop)."""
    with anyio.fail_after(timeout):
        while not cond():  # noqa: ASYNC110 - the conditions are plain state, no event to wait on
            await anyio.sleep(0.005)


def _config(endpoint: str, **kw: Any) -> ExchangeConfig:
    options = kw.pop("options", {})
    return ExchangeConfig.ninjatrader(endpoint, options=options, **kw)


@asynccontextmanager
async def running(
    sim: NinjaTraderSimulator, got: Collected, **kw: Any
) -> AsyncIterator[tuple[NinjaTraderConnection, list[BaseException]]]:
    """A connected ``NinjaTraderConnection`` with ``run()`` in a task; yields it and the
    list that receives run()'s exception, if any."""
    conn = NinjaTraderFactory().create(_config(sim.endpoint, **kw), got.sink)
    await conn.connect(sim.endpoint)
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await conn.run()
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        try:
            yield conn, errors
        finally:
            await conn.close()


# -- happy path ----------------------------------------------------------------------------------
async def test_connection_satisfies_the_contract(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    conn = NinjaTraderFactory().create(_config(sim.endpoint), got.sink)
    assert isinstance(conn, ExchangeConnection)
    assert conn.health().connected is False


async def test_subscribe_streams_trades_quotes_and_depth(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got) as (conn, errors):
        assert conn.health().connected
        assert conn.heartbeat_s == 10
        await conn.subscribe([ES, NQ])
        assert conn.instrument_ids == {ES: 1, NQ: 2}
        assert conn.subscribed == {ES, NQ}
        await until(lambda: len(got.of(Trade)) >= 5 and len(got.of(Quote)) >= 5)
        await until(lambda: len(got.of(BookUpdate)) >= 20)
    assert errors == []
    assert {t.symbol for t in got.events} == {ES, NQ}
    assert all(t.exchange == "nt" for t in got.events)
    # snapshot first: the quote, then a clear and one add per level, for each symbol
    es_books = [b for b in got.events if isinstance(b, BookUpdate | BookClear) and b.symbol == ES]
    assert isinstance(es_books[0], BookClear)
    assert [b.action for b in es_books[1:11]] == ["A"] * 10
    assert all(b.action != "R" for b in got.of(BookUpdate))
    for q in got.of(Quote):
        assert 0 < q.bid_price < q.ask_price
        assert q.bid_size > 0
        assert q.bid_size % 1_000_000_000 == 0
    for t in got.of(Trade):
        assert t.side in ("B", "A")
        assert t.price > 0
    # sequence: contiguous across all instruments of the connection, no gap reported
    seqs = [e.sequence for e in got.events if not isinstance(e, Gap)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert got.of(Gap) == []
    assert got.sink.malformed_count == 0


async def test_book_replay_matches_quotes(sim: NinjaTraderSimulator) -> None:
    """Applying the depth updates gives a book whose top equals the last quote."""
    got = Collected()
    async with running(sim, got) as (conn, _):
        await conn.subscribe([ES])
        await until(lambda: len(got.of(BookUpdate)) >= 300)
    book: dict[str, dict[int, int]] = {"B": {}, "A": {}}
    last_quote: Quote | None = None
    for e in got.events:
        if isinstance(e, BookClear):
            book = {"B": {}, "A": {}}
        elif isinstance(e, BookUpdate):
            if e.size == 0:
                book[e.side].pop(e.price, None)
            else:
                book[e.side][e.price] = e.size
        elif isinstance(e, Quote):
            last_quote = e
            # quotes are sent after the depth records of the same event
            assert max(book["B"]) == e.bid_price
            assert book["B"][e.bid_price] == e.bid_size
            assert min(book["A"]) == e.ask_price
            assert book["A"][e.ask_price] == e.ask_size
    assert last_quote is not None
    assert len(book["B"]) == len(book["A"]) == 5


async def test_schema_selection_and_unsubscribe(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got, options={"schemas": ["trades"]}) as (conn, _):
        await conn.subscribe([ES, NQ])
        await until(lambda: len(got.of(Trade)) >= 10)
        assert got.of(Quote) == [] and got.of(BookUpdate) == []
        await conn.unsubscribe([NQ, "NOT SUBSCRIBED"])
        assert conn.subscribed == {ES}
        mark = len(got.events)
        await until(lambda: len(got.events) >= mark + 20)
        # nothing of NQ after the unsubscribe was acknowledged
        assert {t.symbol for t in got.events[mark:]} == {ES}
        assert sim.subscriptions() == [{ES}]


async def test_refused_symbols_are_named_and_others_still_stream(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got) as (conn, _):
        with pytest.raises(SubscriptionError) as info:
            await conn.subscribe(["ZZ 03-26", ES, "YY"])
        message = str(info.value)
        assert "'ZZ 03-26' (unknown instrument)" in message
        assert "'YY' (unknown instrument)" in message
        assert "[nt]" in message and sim.endpoint in message
        assert conn.subscribed == {ES}
        await until(lambda: len(got.of(Trade)) >= 3)


async def test_refuse_symbol_refuses_new_subscriptions_only(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got) as (conn, _):
        await conn.subscribe([ES])
        await sim.refuse_symbol(ES)
        await sim.refuse_symbol(NQ)
        with pytest.raises(SubscriptionError, match=r"'NQ 03-26' \(unknown instrument\)"):
            await conn.subscribe([NQ])
        assert sim.subscriptions() == [{ES}]  # a symbol already subscribed keeps flowing
        count = len(got.of(Trade))
        await until(lambda: len(got.of(Trade)) > count + 3)
        await sim.refuse_symbol(NQ, on=False)
        await conn.subscribe([NQ])
        assert conn.subscribed == {ES, NQ}


async def test_invalid_symbol_is_refused_before_sending(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got) as (conn, _):
        with pytest.raises(SubscriptionError, match="printable"):
            await conn.subscribe(["E|S"])
        with pytest.raises(TypeError):
            await conn.subscribe(ES)  # a str is a sequence of characters: refused
        await conn.subscribe([])  # nothing to do
        assert sim.subscriptions() == [set()]


async def test_many_symbols_are_split_over_requests() -> None:
    symbols = [f"SYM{i:04d}" for i in range(600)]
    async with NinjaTraderSimulator(symbols, rate=0) as sim:
        got = Collected()
        async with running(sim, got) as (conn, _):
            await conn.subscribe(symbols)
            assert conn.subscribed == set(symbols)
            assert sorted(conn.instrument_ids.values()) == list(range(1, 601))


async def test_probe_gets_a_pong_and_idle_sessions_get_heartbeats() -> None:
    async with NinjaTraderSimulator([ES], rate=0, heartbeat_s=1) as sim:
        got = Collected()
        controls: list[c.ControlEvent] = []
        async with running(sim, got, options={"heartbeat_interval_s": 1}) as (conn, _):
            assert conn.heartbeat_s == 1
            inner = got.sink.control
            assert inner is not None

            def spy(kind: str, number: int, text: str) -> None:
                controls.append(c.parse_control(kind, number, text))
                inner(kind, number, text)

            got.sink.control = spy
            before = conn.health().last_activity_ns
            await conn.probe()
            await until(lambda: any(isinstance(e, c.Pong) for e in controls))
            assert conn.health().last_activity_ns > before
            await until(lambda: c.Heartbeat() in controls, timeout=3)


# -- handshake and credentials ------------------------------------------------------------------
async def test_credentials_accepted_and_refused() -> None:
    async with NinjaTraderSimulator([ES], users={"alice": "Tr0ub4dor"}) as sim:
        good = Collected()
        creds = Credentials(username="alice", password="Tr0ub4dor")
        async with running(sim, good, credentials=creds) as (conn, _):
            await conn.subscribe([ES])
        for bad in (
            Credentials(username="alice", password="Xyzzy-42"),
            Credentials(username="mallory", password="Tr0ub4dor"),
            Credentials(),
        ):
            conn = NinjaTraderFactory().create(
                _config(sim.endpoint, credentials=bad), Collected().sink
            )
            with pytest.raises(AuthenticationError) as info:
                await conn.connect(sim.endpoint)
            assert "Tr0ub4dor" not in str(info.value) and "Xyzzy" not in str(info.value)
            assert conn.health().connected is False
        await sim.refuse_credentials()
        conn = NinjaTraderFactory().create(
            _config(sim.endpoint, credentials=creds), Collected().sink
        )
        with pytest.raises(AuthenticationError, match="refused the credentials"):
            await conn.connect(sim.endpoint)
        await sim.refuse_credentials(False)
        again = NinjaTraderFactory().create(
            _config(sim.endpoint, credentials=creds), Collected().sink
        )
        await again.connect(sim.endpoint)
        await again.close()


async def test_half_credentials_are_a_configuration_error(sim: NinjaTraderSimulator) -> None:
    conn = NinjaTraderFactory().create(
        _config(sim.endpoint, credentials=Credentials(username="alice")), Collected().sink
    )
    with pytest.raises(AuthenticationError, match="both username and password"):
        await conn.connect(sim.endpoint)


async def test_client_limit_is_a_retryable_failure() -> None:
    async with NinjaTraderSimulator([ES], max_clients=1) as sim:
        first = NinjaTraderFactory().create(_config(sim.endpoint), Collected().sink)
        await first.connect(sim.endpoint)
        second = NinjaTraderFactory().create(_config(sim.endpoint), Collected().sink)
        with pytest.raises(ConnectionFailed, match="1 clients already connected"):
            await second.connect(sim.endpoint)
        await first.close()


async def test_unreachable_and_silent_and_foreign_servers() -> None:
    # nothing listening: ConnectionFailed naming the endpoint and what to do
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    endpoint = f"127.0.0.1:{free_port}"
    conn = NinjaTraderFactory().create(_config(endpoint), Collected().sink)
    with pytest.raises(ConnectionFailed) as info:
        await conn.connect(endpoint)
    assert endpoint in str(info.value) and "HubFeed add-on" in str(info.value)

    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep(5)  # like TWS: waits for the client to speak first

    async def foreign(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"220 smtp.example ESMTP ready\r\n")
            await anyio.sleep(5)

    for handler, error in ((silent, ConnectionFailed), (foreign, ProtocolError)):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            endpoint = f"127.0.0.1:{port}"
            conn = NinjaTraderFactory().create(
                _config(endpoint, options={"handshake_timeout_s": 0.3}), Collected().sink
            )
            with pytest.raises(error, match="HubFeed"):
                await conn.connect(endpoint)
            tg.cancel_scope.cancel()


async def test_bad_endpoint_is_a_config_error() -> None:
    conn = NinjaTraderFactory().create(_config("nonsense"), Collected().sink)
    with pytest.raises(ConfigError, match="host:port"):
        await conn.connect("nonsense")
    assert split_endpoint("[::1]:7496") == ("::1", 7496)
    for bad in ("::1:7496", "host:0", "host:x", ":7496"):
        with pytest.raises(ValueError):
            split_endpoint(bad)


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        sim_cm = NinjaTraderSimulator([ES], host="::1")
        sim = await sim_cm.__aenter__()
    except OSError:
        pytest.skip("::1 is not configured on this host")
    try:
        assert sim.endpoint.startswith("[::1]:")
        got = Collected()
        async with running(sim, got) as (conn, _):
            await conn.subscribe([ES])
            await until(lambda: len(got.events) > 3)
    finally:
        await sim_cm.__aexit__(None, None, None)


def test_simulator_refuses_non_loopback_hosts() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            NinjaTraderSimulator([ES], host=host)
    assert NinjaTraderSimulator([ES], host="localhost").host == "127.0.0.1"


# -- faults ----------------------------------------------------------------------------------------
async def test_skip_sequence_publishes_a_gap(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got) as (conn, _):
        await conn.subscribe([ES])
        await until(lambda: len(got.events) > 20)
        await sim.skip_sequence(3)
        await until(lambda: len(got.of(Gap)) == 1)
        gap = got.of(Gap)[0]
        assert gap.symbol == "" and gap.end_seq - gap.start_seq == 2
        assert "sequence gap" in gap.reason
        count = len(got.events)
        await until(lambda: len(got.events) > count + 20)
    assert len(got.of(Gap)) == 1


async def test_check_sequence_off_reports_no_gap(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got, options={"check_sequence": False}) as (conn, _):
        await conn.subscribe([ES])
        await until(lambda: len(got.events) > 10)
        await sim.skip_sequence(5)
        count = len(got.events)
        await until(lambda: len(got.events) > count + 20)
    assert got.of(Gap) == []


@pytest.mark.parametrize("kind", ["unknown_rtype", "short_trade"])
async def test_malformed_record_is_counted_and_the_stream_goes_on(
    sim: NinjaTraderSimulator, kind: str
) -> None:
    got = Collected()
    async with running(sim, got) as (conn, errors):
        await conn.subscribe([ES])
        await until(lambda: len(got.events) > 10)
        await sim.send_malformed(kind)
        await until(lambda: got.sink.malformed_count >= 1)
        count = len(got.events)
        await until(lambda: len(got.events) > count + 30)
        assert conn.health().connected
    assert errors == []
    assert got.of(Gap) == []  # the malformed record carried no sequence
    with pytest.raises(ValueError):
        await sim.send_malformed("nonsense")


async def test_drop_connections_ends_run_with_connection_failed(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got) as (conn, errors):
        await conn.subscribe([ES])
        await until(lambda: len(got.events) > 5)
        assert await sim.drop_connections() == 1
        await until(lambda: bool(errors))
        assert isinstance(errors[0], ConnectionFailed)
        assert sim.endpoint in str(errors[0])
        assert conn.health().connected is False
        with pytest.raises(ConnectionFailed):
            await conn.probe()
        # a new session on the same sink: ids and sequence start over
        conn2 = NinjaTraderFactory().create(_config(sim.endpoint), got.sink)
        await conn2.connect(sim.endpoint)
        mark = len(got.events)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn2.run)
            await conn2.subscribe([NQ])
            await until(lambda: len(got.events) > mark + 5)
            await conn2.close()
        assert conn2.instrument_ids == {NQ: 1}
        fresh = got.events[mark:]
        assert fresh[0].sequence == 1
        assert {e.symbol for e in fresh} == {NQ}
        assert got.of(Gap) == []


async def test_stall_silences_everything_and_subscribe_times_out(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got, options={"subscribe_timeout_s": 0.3}) as (conn, errors):
        await conn.subscribe([ES])
        await until(lambda: len(got.events) > 5)
        await sim.stall()
        assert sim.stalled
        await anyio.sleep(0.1)  # bytes already in flight
        quiet_since = conn.health().last_activity_ns
        count = len(got.events)
        await conn.probe()  # no pong while stalled
        with pytest.raises(SubscriptionError, match="no subscribe acknowledgement"):
            await conn.subscribe([NQ])
        assert len(got.events) == count
        assert conn.health().last_activity_ns == quiet_since
        await sim.resume()
        await until(lambda: len(got.events) > count + 10)
        assert errors == []


async def test_slow_reader_loses_data_and_sees_the_gap() -> None:
    """While the session is stalled the market goes on; what did not fit in the
    server's buffer is dropped with its sequence numbers, so the client sees a Gap,
    followed by the slow-reader warning (system code 2)."""
    async with NinjaTraderSimulator([ES], rate=5_000, seed=3, max_buffer=16_384) as sim:
        got = Collected()
        controls: list[c.ControlEvent] = []
        async with running(sim, got) as (conn, errors):
            inner = got.sink.control
            assert inner is not None

            def spy(kind: str, number: int, text: str) -> None:
                controls.append(c.parse_control(kind, number, text))
                inner(kind, number, text)

            got.sink.control = spy
            await conn.subscribe([ES])
            await until(lambda: len(got.events) > 10)
            await sim.stall()
            await until(lambda: any(s.dropped > 0 for s in sim.connected()), timeout=10)
            await sim.resume()
            await until(lambda: len(got.of(Gap)) >= 1, timeout=10)
            await until(lambda: any(isinstance(e, c.Notice) for e in controls))
            assert conn.health().connected and errors == []
        gap = got.of(Gap)[0]
        notice = next(e for e in controls if isinstance(e, c.Notice))
        dropped = int(notice.text.rsplit("=", 1)[1])
        assert notice.code == c.SYS_SLOW_READER_WARNING
        assert gap.end_seq - gap.start_seq + 1 == dropped


async def test_refuse_then_accept_connections(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    async with running(sim, got) as (conn, _):
        await conn.subscribe([ES])
        sim.refuse_connections()
        await anyio.sleep(0.05)
        refused = NinjaTraderFactory().create(_config(sim.endpoint), Collected().sink)
        with pytest.raises(ConnectionFailed, match="cannot connect"):
            await refused.connect(sim.endpoint)
        # the live session is untouched
        count = len(got.events)
        await until(lambda: len(got.events) > count + 5)
        sim.accept_connections()
        again = NinjaTraderFactory().create(_config(sim.endpoint), Collected().sink)
        with anyio.fail_after(5):
            while True:
                try:
                    await again.connect(sim.endpoint)
                    break
                except ConnectionFailed:
                    again = NinjaTraderFactory().create(_config(sim.endpoint), Collected().sink)
                    await anyio.sleep(0.02)
        await again.close()
        assert sim.sessions_started == 2


async def test_close_is_idempotent_and_run_returns(sim: NinjaTraderSimulator) -> None:
    got = Collected()
    conn = NinjaTraderFactory().create(_config(sim.endpoint), got.sink)
    await conn.connect(sim.endpoint)
    installed = got.sink.control
    assert installed == conn._on_control
    with pytest.raises(ConnectionFailed, match="twice"):
        await conn.connect(sim.endpoint)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await conn.subscribe([ES])
        await conn.close()
        await conn.close()
    assert got.sink.control is None
    assert conn.health().connected is False
    assert conn.health().detail == "closed"
    await conn.unsubscribe([ES])  # no error on a closed session
    with pytest.raises(ConnectionFailed):
        await conn.run()


# -- raw sockets: the server side of the spec ----------------------------------------------
class RawClient:
    """A hand-written client: bytes out, records in (parsed with the core decoder's sizes)."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def line(self) -> bytes:
        with anyio.fail_after(5):
            while b"\n" not in self.buf:
                self.buf += await self.stream.receive()
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    async def record(self) -> bytes:
        with anyio.fail_after(5):
            while not self.buf or len(self.buf) < self.buf[0] * 4:
                self.buf += await self.stream.receive()
        n = self.buf[0] * 4
        rec, self.buf = self.buf[:n], self.buf[n:]
        return rec

    async def control(self) -> tuple[int, int, str]:
        """Next error/system record as (rtype, code, text), skipping market data."""
        while True:
            rec = await self.record()
            if rec[1] == core_dbn.RTYPE_ERROR:
                return rec[1], rec[318], rec[16:318].split(b"\0", 1)[0].decode()
            if rec[1] == core_dbn.RTYPE_SYSTEM:
                return rec[1], rec[319], rec[16:319].split(b"\0", 1)[0].decode()


@asynccontextmanager
async def raw_session(
    sim: NinjaTraderSimulator, hello: bytes = b"version=1\n"
) -> AsyncIterator[RawClient]:
    host, port = split_endpoint(sim.endpoint)
    stream = await anyio.connect_tcp(host, port)
    async with stream:
        client = RawClient(stream)
        greeting = c.parse_fields(await client.line())
        assert greeting["protocol"] == "hubfeed" and greeting["version"] == "1"
        await stream.send(hello)
        yield client


async def test_raw_version_mismatch_is_refused(sim: NinjaTraderSimulator) -> None:
    async with raw_session(sim, b"version=2\n") as client:
        reply = c.parse_fields(await client.line())
        assert reply["success"] == "0" and reply["code"] == "version"
        with anyio.fail_after(5):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                while True:
                    client.buf += await client.stream.receive()


async def test_raw_malformed_logon_is_bad_request(sim: NinjaTraderSimulator) -> None:
    async with raw_session(sim, b"version=1|user=x\n") as client:
        reply = c.parse_fields(await client.line())
        assert (reply["success"], reply["code"]) == ("0", "bad_request")


async def test_raw_overlong_logon_is_bad_request(sim: NinjaTraderSimulator) -> None:
    async with raw_session(sim, b"version=1|client=" + b"x" * 5000) as client:
        reply = c.parse_fields(await client.line())
        assert (reply["success"], reply["code"]) == ("0", "bad_request")
        assert "4096" in reply["error"]


async def test_raw_bad_requests_are_answered_and_not_fatal(sim: NinjaTraderSimulator) -> None:
    async with raw_session(sim) as client:
        reply = c.parse_fields(await client.line())
        assert reply["success"] == "1" and reply["heartbeat_s"] == "10"
        await client.stream.send(b"op=frobnicate|id=7\nhello world\nop=ping|id=8\n")
        assert await client.control() == (
            core_dbn.RTYPE_ERROR,
            5,
            "op=frobnicate|id=7|error=unknown op 'frobnicate'",
        )
        rtype, code, text = await client.control()
        assert (rtype, code) == (core_dbn.RTYPE_ERROR, 5)
        assert text.startswith("op=unknown|id=0|error=")
        assert await client.control() == (core_dbn.RTYPE_SYSTEM, 0, "op=pong|id=8")


async def test_raw_subscribe_sequence_of_records(sim: NinjaTraderSimulator) -> None:
    """Mappings/errors in request order, then the ack, then data for mapped ids only,
    with sequence 1, 2, 3, ... across instruments."""
    async with raw_session(sim) as client:
        await client.line()
        await client.stream.send(
            f"op=subscribe|id=42|symbols={ES},ZZ,{NQ},{ES}|schemas=trades,mbp-1\n".encode()
        )
        first = await client.record()
        assert first[1] == core_dbn.RTYPE_SYMBOL_MAPPING
        assert int.from_bytes(first[4:8], "little") == 1
        assert first[17:88].rstrip(b"\0").decode() == ES
        assert first[89:160].rstrip(b"\0").decode() == ES
        assert await client.control() == (
            core_dbn.RTYPE_ERROR,
            4,
            "op=subscribe|id=42|symbol=ZZ|error=unknown instrument",
        )
        second = await client.record()
        assert second[1] == core_dbn.RTYPE_SYMBOL_MAPPING
        assert int.from_bytes(second[4:8], "little") == 2
        assert await client.control() == (
            core_dbn.RTYPE_SYSTEM,
            1,
            "op=subscribe|id=42|accepted=2|rejected=1",
        )
        seqs: list[int] = []
        while len(seqs) < 50:
            rec = await client.record()
            if rec[1] in (core_dbn.RTYPE_MBP_0, core_dbn.RTYPE_MBP_1):
                assert int.from_bytes(rec[4:8], "little") in (1, 2)
                seqs.append(int.from_bytes(rec[44:48], "little"))
            else:
                assert rec[1] == core_dbn.RTYPE_SYSTEM  # only heartbeats may interleave
        assert seqs == list(range(1, 51))
        await client.stream.send(f"op=unsubscribe|id=43|symbols={ES},{NQ},XX\n".encode())
        assert await client.control() == (
            core_dbn.RTYPE_SYSTEM,
            5,
            "op=unsubscribe|id=43|removed=2",
        )


async def test_raw_line_too_long_closes_the_session(sim: NinjaTraderSimulator) -> None:
    async with raw_session(sim) as client:
        await client.line()
        await client.stream.send(b"op=ping|id=1|pad=" + b"x" * 5000 + b"\n")
        rtype, code, text = await client.control()
        assert (rtype, code) == (core_dbn.RTYPE_ERROR, 5)
        assert "4096" in text
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            while True:
                await client.record()


async def test_bench_mode_streams_real_sequenced_records() -> None:
    """Bench mode pre-frames records in bulk; its speed is measured in benchmarks/, here
    only that what it sends is real, sequenced DBN."""
    async with NinjaTraderSimulator([ES, NQ], bench=True) as sim:
        async with raw_session(sim) as client:
            await client.line()
            await client.stream.send(
                f"op=subscribe|id=1|symbols={ES},{NQ}|schemas=trades,mbp-1\n".encode()
            )
            # skip the control records (2 mappings + ack = 176 + 176 + 320 bytes)
            for _ in range(3):
                await client.record()
            raw = client.stream.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            head = client.buf
            with anyio.fail_after(30):  # a bound, not a measurement
                while len(head) < 4096:
                    head += await client.stream.receive(1 << 20)
        # and they are real, sequenced records: decode the first ones with the core decoder
        got = Collected()
        got.sink.map_symbol(1, ES)
        got.sink.map_symbol(2, NQ)
        got.sink.dbn.check_sequence = True
        got.sink.feed_dbn(head[: (len(head) // 128) * 128], 0)
        seqs = [e.sequence for e in got.events]
        assert len(seqs) >= 30
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert got.of(Gap) == [] and got.sink.malformed_count == 0


async def test_bench_mode_through_the_connection_keeps_the_protocol() -> None:
    """Bench batches go through the real connection and sink: mappings before data,
    contiguous sequence, nothing malformed."""
    async with NinjaTraderSimulator([ES, NQ], bench=True, bench_batch=1024) as sim:
        got = Collected()
        counts = {"n": 0}
        got.bus.subscribe(Trade, lambda t: counts.__setitem__("n", counts["n"] + 1))
        async with running(sim, got, options={"schemas": ["trades", "mbp-1"]}) as (conn, _):
            await conn.subscribe([ES, NQ])
            await until(lambda: counts["n"] >= 20_000, timeout=30)
        assert got.sink.malformed_count == 0
        assert got.of(Gap) == []
        assert {e.symbol for e in got.events} == {ES, NQ}
        seqs = [e.sequence for e in got.events]
        assert seqs == list(range(1, len(seqs) + 1))


# -- plugin wiring ---------------------------------------------------------------------------
async def test_hook_factory_and_simulator_spec() -> None:
    (factory,) = hub_connection_factories()
    assert factory.protocol == "ninjatrader"
    spec = factory.simulator()
    assert spec is not None
    assert spec.default_symbols == ["ES", "NQ"]
    config = spec.demo_config("127.0.0.1:1234", ["ES"])
    assert config.protocol == "ninjatrader" and config.symbols == ["ES"]
    factory.validate_options(config)
    ready: list[tuple[str, int]] = []

    async def serve() -> None:
        await spec.serve("127.0.0.1", 0, ["ES"], 50.0, lambda h, p: ready.append((h, p)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await until(lambda: bool(ready))
        host, port = ready[0]
        got = Collected()
        async with running(NinjaTraderSimulatorView(host, port), got) as (conn, _):
            await conn.subscribe(["ES"])
            await until(lambda: len(got.events) > 3)
        tg.cancel_scope.cancel()


class NinjaTraderSimulatorView(NinjaTraderSimulator):
    """Only the ``endpoint`` of a simulator served elsewhere (for ``running``)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(["ES"], host=host, port=port)


def test_bad_options_are_refused() -> None:
    factory = NinjaTraderFactory()
    options: dict[str, Any]
    for options in (
        {"schemas": ["ohlcv-1m"]},
        {"schemas": []},
        {"heartbeat_interval_s": 0},
        {"max_record_len": 100},
        {"no_such_option": 1},
    ):
        with pytest.raises(ValidationError):
            factory.create(_config("127.0.0.1:1", options=options), Collected().sink)
