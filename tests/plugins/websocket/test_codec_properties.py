"""Property tests: whatever bytes arrive, the dialect only ever counts them as malformed
(or ignores well-formed frames it has no use for); it never raises, never publishes a tick
from a broken frame, and parses every decimal exactly or not at all."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from hub_core import Trade, TypedEventBus
from hub_core.processor import ConnectionSink, EventProcessor
from hub_core.testing import EventRecorder
from hub_plugin_websocket import BinanceDialect, SessionConfig
from hub_plugin_websocket.dialects.binance import BinanceSession
from hub_plugin_websocket.ratelimit import RateWindow
from hub_plugin_websocket.recorded import load_recording
from tests.plugins.websocket.conftest import RECORDED

FRAMES = [m.text for m in load_recording(RECORDED).received]
SIM_TRADE = (
    b'{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":1000001,"p":"60000.01000000",'
    b'"q":"0.00500000","T":1700000000000,"m":false,"M":true}'
)
REPLY = b'{"result":null,"id":1}'
TICKER = b'{"u":1,"s":"A","b":"1","B":"1","a":"2","A":"1"}'
SAMPLES = [*FRAMES, SIM_TRADE, REPLY, TICKER]


def fresh() -> tuple[ConnectionSink, BinanceSession, EventRecorder]:
    bus = TypedEventBus()
    sink = EventProcessor(bus).sink_for("binance")
    s = BinanceDialect().new_session(
        sink,
        SessionConfig(
            "wss://stream.binance.com:9443/stream",
            ("trade", "aggTrade", "bookTicker", "depth@100ms"),
            "https://api.example",
        ),
    )
    assert isinstance(s, BinanceSession)
    s.subscribe(["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR", "BTCUSDT"])
    return sink, s, EventRecorder(bus)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    sink, s, rec = fresh()
    s.feed(data, 1)
    if sink.malformed_count:
        assert not rec.events


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_frames_are_malformed(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    sink, s, rec = fresh()
    assert s.feed(frame[:cut], 1) is None
    assert sink.malformed_count == 1
    assert not rec.events


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_frames_never_raise(frame: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    b = data.draw(st.integers(min_value=0, max_value=255))
    mutated = frame[:i] + bytes([b]) + frame[i + 1 :]
    _, s, rec = fresh()
    s.feed(mutated, 1)  # must not raise, whatever the byte
    for t in rec.of(Trade):
        assert t.price >= 0 or b == ord("-")


decimals = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, places=12
)


@settings(max_examples=400, deadline=None)
@given(decimals, decimals, st.booleans())
def test_trade_decimals_are_exact_or_malformed(price: Decimal, qty: Decimal, maker: bool) -> None:
    p, q = format(price, "f"), format(qty, "f")
    body = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 5, "p": p, "q": q, "T": 7, "m": maker}
    sink, s, rec = fresh()
    s.feed(json.dumps(body).encode(), 9)
    exact = all((d * 10**9) == (d * 10**9).to_integral_value() for d in (price, qty))
    if exact:
        (t,) = rec.of(Trade)
        assert (t.price, t.size) == (int(price * 10**9), int(qty * 10**9))
        assert t.side == ("A" if maker else "B")
    else:  # finer than 1e-9: refused, never rounded
        assert sink.malformed_count == 1 and not rec.events


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=6),
    st.lists(st.floats(min_value=0, max_value=0.6), min_size=1, max_size=60),
)
def test_rate_window_never_exceeds_its_limit(limit: int, gaps: list[float]) -> None:
    """Events sent when ``delay`` allows them: no window ever holds more than ``limit``."""
    w = RateWindow(limit, 1.0)
    now = 0.0
    sent: list[float] = []
    for g in gaps:
        now += g
        now += w.delay(now)
        w.record(now)
        sent.append(now)
    for t in sent:
        assert sum(1 for x in sent if t <= x < t + 1.0) <= limit
