"""Conformance vectors (sdk-docs/protocols/ninjatrader-vectors.json), both directions.

Encode: the codec and the core's DBN encoder (what the simulator sends) produce
exactly the vector bytes. Decode: the codec, the core's decoder through a real
``ConnectionSink``, and ``databento-dbn`` (the independent oracle) read the
vector bytes back to exactly the listed values.
"""

from __future__ import annotations

from typing import Any

import databento_dbn
import pytest

from hub_core import BookUpdate, Gap, Quote, Trade, dbn as core_dbn
from hub_plugin_ninjatrader import codec as c

from .conftest import Collected


def _records(vectors: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = vectors["records"]
    return records


def _by_name(vectors: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    item: dict[str, Any] = next(v for v in vectors[key] if v["name"] == name)
    return item


# -- text lines ---------------------------------------------------------------------------------
def test_every_line_is_its_text_and_fields(vectors: dict[str, Any]) -> None:
    assert vectors["protocol"] == c.PROTOCOL_NAME
    assert vectors["version"] == c.PROTOCOL_VERSION
    for line in vectors["lines"]:
        raw = bytes.fromhex(line["hex"])
        assert raw == (line["text"] + "\n").encode(), line["name"]
        assert c.parse_fields(raw[:-1]) == line["fields"], line["name"]


def test_client_decodes_server_lines(vectors: dict[str, Any]) -> None:
    greeting = _by_name(vectors, "lines", "greeting")
    client = c.ClientCodec()
    client.receive_data(bytes.fromhex(greeting["hex"]))
    ev = greeting["event"]
    assert client.next_event() == c.Greeting(ev["version"], ev["cram"], ev["server"])
    client.send(c.Hello())
    accepted = _by_name(vectors, "lines", "accepted")
    client.receive_data(bytes.fromhex(accepted["hex"]))
    ev = accepted["event"]
    assert client.next_event() == c.HandshakeAccepted(
        ev["session_id"], ev["heartbeat_s"], ev["version"]
    )
    for name in ("rejected_auth", "rejected_version"):
        vec = _by_name(vectors, "lines", name)
        rejected = c.ClientCodec()
        rejected.receive_data(bytes.fromhex(greeting["hex"]))
        rejected.next_event()
        rejected.send(c.Hello())
        rejected.receive_data(bytes.fromhex(vec["hex"]))
        assert rejected.next_event() == c.HandshakeRejected(
            vec["event"]["code"], vec["event"]["error"]
        )


def test_server_encodes_its_lines(vectors: dict[str, Any]) -> None:
    greeting = _by_name(vectors, "lines", "greeting")["event"]
    server = c.ServerCodec()
    out = server.send(c.Greeting(greeting["version"], greeting["cram"], greeting["server"]))
    assert out.hex() == _by_name(vectors, "lines", "greeting")["hex"]
    server.receive_data(bytes.fromhex(_by_name(vectors, "lines", "logon_anonymous")["hex"]))
    server.next_event()
    acc = _by_name(vectors, "lines", "accepted")["event"]
    out = server.send(c.HandshakeAccepted(acc["session_id"], acc["heartbeat_s"], acc["version"]))
    assert out.hex() == _by_name(vectors, "lines", "accepted")["hex"]
    for name in ("rejected_auth", "rejected_version"):
        vec = _by_name(vectors, "lines", name)
        s = c.ServerCodec()
        s.send(c.Greeting(1, greeting["cram"]))
        s.receive_data(b"version=1\n")
        s.next_event()
        assert (
            s.send(c.HandshakeRejected(vec["event"]["code"], vec["event"]["error"])).hex()
            == vec["hex"]
        )


def test_client_encodes_logon_and_requests(vectors: dict[str, Any]) -> None:
    greeting = _by_name(vectors, "lines", "greeting")
    for name in ("logon_with_credentials", "logon_anonymous"):
        vec = _by_name(vectors, "lines", name)
        ev = vec["event"]
        client = c.ClientCodec()
        client.receive_data(bytes.fromhex(greeting["hex"]))
        client.next_event()
        hello = c.Hello(
            ev["version"], ev["user"], ev["password"], None, ev["heartbeat_s"], ev["client"]
        )
        assert client.send(hello).hex() == vec["hex"], name
    for name in ("subscribe", "subscribe_trades_only"):
        vec = _by_name(vectors, "lines", name)
        ev = vec["event"]
        line = c.encode_request(
            c.Subscribe(ev["req_id"], tuple(ev["symbols"]), tuple(ev["schemas"]))
        )
        assert line.hex() == vec["hex"], name
    vec = _by_name(vectors, "lines", "unsubscribe")
    ev = vec["event"]
    assert c.encode_request(c.Unsubscribe(ev["req_id"], tuple(ev["symbols"]))).hex() == vec["hex"]
    vec = _by_name(vectors, "lines", "ping")
    assert c.encode_request(c.Ping(vec["event"]["req_id"])).hex() == vec["hex"]


def test_server_decodes_client_lines(vectors: dict[str, Any]) -> None:
    greeting = _by_name(vectors, "lines", "greeting")["event"]
    vec = _by_name(vectors, "lines", "logon_with_credentials")
    server = c.ServerCodec()
    server.send(c.Greeting(1, vec["event"]["cram"]))
    server.receive_data(bytes.fromhex(vec["hex"]))
    hello = server.next_event()
    ev = vec["event"]
    assert hello == c.Hello(
        ev["version"], ev["user"], None, ev["auth"], ev["heartbeat_s"], ev["client"]
    )
    assert isinstance(hello, c.Hello)
    assert server.verify(hello, ev["password"])
    assert greeting["cram"] == ev["cram"]
    server.send(c.HandshakeAccepted("x", 10))
    for name in (
        "subscribe",
        "subscribe_trades_only",
        "subscribe_default_schemas",
        "unsubscribe",
        "ping",
    ):
        vec = _by_name(vectors, "lines", name)
        server.receive_data(bytes.fromhex(vec["hex"]))
        ev = vec["event"]
        got = server.next_event()
        if ev["type"] == "Subscribe":
            assert got == c.Subscribe(ev["req_id"], tuple(ev["symbols"]), tuple(ev["schemas"]))
        elif ev["type"] == "Unsubscribe":
            assert got == c.Unsubscribe(ev["req_id"], tuple(ev["symbols"]))
        else:
            assert got == c.Ping(ev["req_id"])


def test_bad_lines_become_bad_requests(vectors: dict[str, Any]) -> None:
    for vec in vectors["bad_lines"]:
        server = c.ServerCodec()
        server.send(c.Greeting(1, "d" * 32))
        server.receive_data(b"version=1\n")
        server.next_event()
        server.send(c.HandshakeAccepted("x", 10))
        server.receive_data(bytes.fromhex(vec["hex"]))
        got = server.next_event()
        assert isinstance(got, c.BadRequest), vec["name"]
        assert (got.op, got.req_id) == (vec["event"]["op"], vec["event"]["req_id"]), vec["name"]
        if "answer_text" in vec:
            assert c.request_error_text(got.op, got.req_id, got.reason) == vec["answer_text"]


def test_auth_vectors(vectors: dict[str, Any]) -> None:
    for vec in vectors["auth"]:
        assert c.compute_auth(vec["cram"], vec["password"]) == vec["auth"]


# -- DBN records -----------------------------------------------------------------------------------
def _oracle_decode(raw: bytes) -> list[Any]:
    decoder = databento_dbn.DBNDecoder(has_metadata=False, input_version=3)
    decoder.write(raw)
    records: list[Any] = decoder.decode()
    return records


def _oracle_value(record: Any, key: str) -> Any:
    """One field as a plain value: chars as str, enums (stype, code, rtype) as int."""
    holder = record.levels[0] if key in _LEVEL_FIELDS else record
    value = getattr(holder, key)
    if key in {"action", "side"}:
        return value.value if hasattr(value, "value") else value
    if key in {"stype_in", "stype_out", "code", "rtype"}:
        return int(value)
    return value


_LEVEL_FIELDS = {"bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"}


def test_records_agree_with_databento_dbn(vectors: dict[str, Any]) -> None:
    """The vector bytes mean what the vectors say, per the independent oracle."""
    for vec in _records(vectors):
        raw = bytes.fromhex(vec["hex"])
        assert len(raw) == vec["length"] == raw[0] * 4, vec["name"]
        (record,) = _oracle_decode(raw)
        assert _oracle_value(record, "rtype") == vec["rtype"], vec["name"]
        for key, want in vec["fields"].items():
            got = _oracle_value(record, key)
            assert got == want, f"{vec['name']}.{key}: {got!r} != {want!r}"


def test_core_encoder_writes_the_vector_bytes(vectors: dict[str, Any]) -> None:
    """What the simulator sends (the core's encoder) is byte for byte the spec."""
    undef_ts = vectors["constants"]["UNDEF_TIMESTAMP"]
    scale = vectors["constants"]["PRICE_SCALE"]
    undef = vectors["constants"]["UNDEF_PRICE"]
    for vec in _records(vectors):
        f = vec["fields"]
        rtype = vec["rtype"]
        if rtype == core_dbn.RTYPE_SYMBOL_MAPPING:
            out = core_dbn.encode_symbol_mapping(
                f["instrument_id"], f["stype_in_symbol"], f["ts_event"], f["start_ts"], f["end_ts"]
            )
            assert f["end_ts"] == undef_ts
        elif rtype == core_dbn.RTYPE_MBP_0:
            out = core_dbn.encode_trade_raw(
                f["instrument_id"], f["price"], f["size"] * scale, f["side"],
                f["ts_event"], f["ts_recv"], f["sequence"],
            )  # fmt: skip
        elif rtype == core_dbn.RTYPE_MBP_1:
            # the encoder's empty side is price 0 / size 0 (written as UNDEF_PRICE)
            bid_px, bid_sz = (0, 0) if f["bid_px"] == undef else (f["bid_px"], f["bid_sz"])
            ask_px, ask_sz = (0, 0) if f["ask_px"] == undef else (f["ask_px"], f["ask_sz"])
            out = core_dbn.encode_mbp1_raw(
                f["instrument_id"], bid_px, bid_sz * scale, ask_px, ask_sz * scale,
                f["ts_event"], f["ts_recv"], f["sequence"],
            )  # fmt: skip
        elif rtype == core_dbn.RTYPE_MBO:
            update = BookUpdate(
                "nt", "ES 03-26", f["side"], f["price"], f["size"] * scale, f["ts_event"],
                f["ts_recv"], f["action"], f["order_id"], f["sequence"],
            )  # fmt: skip
            out = core_dbn.encode_book_update(update, f["instrument_id"])
        elif rtype == core_dbn.RTYPE_ERROR:
            out = core_dbn.encode_error(f["err"], f["code"], f["ts_event"], bool(f["is_last"]))
        elif rtype == core_dbn.RTYPE_SYSTEM:
            if f["msg"] == "Heartbeat":
                assert core_dbn.encode_heartbeat(f["ts_event"]).hex() == vec["hex"]
            out = core_dbn.encode_system(f["msg"], f["code"], f["ts_event"])
        else:  # pragma: no cover - the vectors only hold the kinds above
            pytest.fail(f"unexpected rtype {rtype}")
        assert out.hex() == vec["hex"], vec["name"]


def test_sink_decodes_every_record(vectors: dict[str, Any]) -> None:
    """Through a real ``ConnectionSink``: ticks on the bus, control records to ``control``."""
    for vec in _records(vectors):
        got = Collected()
        calls: list[tuple[str, int, str]] = []

        def control(kind: str, number: int, text: str, calls: list[Any] = calls) -> None:
            calls.append((kind, number, text))

        got.sink.control = control
        got.sink.map_symbol(1, "ES 03-26")
        assert got.sink.feed_dbn(bytes.fromhex(vec["hex"]), 42) == 1, vec["name"]
        hub = vec["hub"]
        if "control" in hub:
            assert calls == [tuple(hub["control"])], vec["name"]
            assert got.events == []
            assert c.parse_control(*calls[0]) == _control_event(vec["control_event"])
            continue
        assert calls == []
        (tick,) = got.events
        assert type(tick).__name__ == hub["type"], vec["name"]
        for key, want in hub.items():
            if key != "type":
                assert getattr(tick, key) == want, f"{vec['name']}.{key}"
        assert tick.ts_recv == 42
        assert tick.exchange == "nt"


def _control_event(ev: dict[str, Any]) -> c.ControlEvent:
    kind = ev["type"]
    args = {k: v for k, v in ev.items() if k != "type"}
    classes: dict[str, type[Any]] = {
        "SymbolMapped": c.SymbolMapped,
        "SymbolRejected": c.SymbolRejected,
        "RequestFailed": c.RequestFailed,
        "SubscribeAck": c.SubscribeAck,
        "UnsubscribeAck": c.UnsubscribeAck,
        "Pong": c.Pong,
        "Heartbeat": c.Heartbeat,
        "VenueError": c.VenueError,
        "Notice": c.Notice,
    }
    event: c.ControlEvent = classes[kind](**args)
    return event


def test_codec_builds_the_control_texts(vectors: dict[str, Any]) -> None:
    def text(name: str) -> str:
        rec = _by_name(vectors, "records", name)
        value: str = rec["fields"].get("err", rec["fields"].get("msg"))
        return value

    assert text("error_unknown_symbol") == c.symbol_error_text(
        "subscribe", 1, "ZZ 03-26", "unknown instrument"
    )
    assert text("error_bad_request") == c.request_error_text(
        "frobnicate", 7, "unknown op 'frobnicate'"
    )
    assert text("subscribe_ack") == c.subscribe_ack_text(1, 2, 1)
    assert text("unsubscribe_ack") == c.unsubscribe_ack_text(3, 1)
    assert text("pong") == c.pong_text(4)
    assert text("heartbeat") == c.HEARTBEAT_TEXT


@pytest.mark.parametrize("split", [1, 7, 48, 333, 10_000])
def test_session_stream_in_any_split(vectors: dict[str, Any], split: int) -> None:
    """The whole server stream, read in chunks of ``split`` bytes, through the codec and a
    real sink with sequence checking on: the acks, the refusal, the ticks and the gap."""
    session = vectors["session"]
    raw = bytes.fromhex(session["hex"])
    got = Collected()
    got.sink.reset_session()
    got.sink.dbn.check_sequence = True
    controls: list[c.ControlEvent] = []
    got.sink.control = lambda kind, number, text: controls.append(
        c.parse_control(kind, number, text)
    )
    client = c.ClientCodec()
    client.receive_data(bytes.fromhex(_by_name(vectors, "lines", "greeting")["hex"]))
    client.next_event()
    client.send(c.Hello())
    for i in range(0, len(raw), split):
        client.receive_data(raw[i : i + split])
        while not isinstance(event := client.next_event(), c.NeedData):
            if isinstance(event, c.DbnData):
                got.sink.feed_dbn(event.data, 1)
    expect = session["expect"]
    mapped = {e.symbol: e.instrument_id for e in controls if isinstance(e, c.SymbolMapped)}
    assert mapped == expect["accepted"]
    refused = {e.symbol: e.reason for e in controls if isinstance(e, c.SymbolRejected)}
    assert refused == expect["rejected"]
    assert c.SubscribeAck(1, 2, 1) in controls
    assert c.Heartbeat() in controls
    ticks = [e for e in got.events if isinstance(e, Trade | Quote)]
    assert len(ticks) == len(expect["ticks"])
    for tick, want in zip(ticks, expect["ticks"], strict=True):
        assert type(tick).__name__ == want["type"]
        for key, value in want.items():
            if key != "type":
                assert getattr(tick, key) == value, key
    gaps = got.of(Gap)
    assert [(g.start_seq, g.end_seq) for g in gaps] == [
        (g["start_seq"], g["end_seq"]) for g in expect["gaps"]
    ]
    assert got.sink.dbn.pending == 0
