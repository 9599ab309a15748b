"""The plugin kit's surface (``hub_core.plugin``) and its request bookkeeping."""

import ast
import inspect
import sys
from pathlib import Path

import anyio
import pytest

import hub_core.plugin as kit
from hub_core import TypedEventBus
from hub_core.plugin import ConnectionFailed, PendingRequests, Sink, SubscriptionError
from hub_core.processor import EventProcessor


def test_every_exported_name_exists_and_is_documented() -> None:
    assert kit.__all__ == sorted(kit.__all__, key=lambda n: (not n.isupper(), n))
    for name in kit.__all__:
        obj = getattr(kit, name)
        module = sys.modules.get(getattr(obj, "__module__", ""), None)
        if (getattr(module, "__file__", "") or "").endswith(".so"):
            continue  # mypyc drops docstrings; test_docs checks those in the source
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert (obj.__doc__ or "").strip(), f"hub_core.plugin.{name} has no docstring"


def test_the_protocol_lists_what_the_sink_implements() -> None:
    sink = EventProcessor(TypedEventBus()).sink_for("x")
    assert isinstance(sink, Sink)
    members = [n for n in vars(Sink) if not n.startswith("_")]
    assert len(members) >= 15
    for name in members:
        assert hasattr(sink, name), name


def test_venue_error_counts_without_writing_counters() -> None:
    proc = EventProcessor(TypedEventBus())
    sink = proc.sink_for("x")
    sink.venue_error(58, "unknown symbol ZZZ")
    sink.venue_error(58, "unknown symbol YYY")
    stats = proc.get_stats().per_exchange["x"]
    assert stats.venue_errors == 2
    assert sink.last_error == "unknown symbol YYY"


pytestmark = pytest.mark.anyio


async def test_acknowledged_and_partly_refused_requests() -> None:
    reqs = PendingRequests("acme", timeout_s=5)
    a = reqs.open(1, ["AAA", "BBB"])
    b = reqs.open(2, ["CCC"])
    assert len(reqs) == 2 and 1 in reqs
    assert reqs.acknowledge(1, refused={"BBB": "unknown symbol"})
    assert reqs.acknowledge(2)
    assert not reqs.acknowledge(2)  # a late duplicate answer
    assert await reqs.wait([a, b]) == {"BBB": "unknown symbol"}
    assert len(reqs) == 0


async def test_a_refused_request_names_each_symbol_in_one_error() -> None:
    reqs = PendingRequests("acme", "127.0.0.1:1", timeout_s=5)
    a = reqs.open("s1", ["AAA", "BBB"])
    b = reqs.open("s2", ["CCC"])
    reqs.refuse("s1", "no entitlement")
    reqs.acknowledge("s2")
    with pytest.raises(SubscriptionError) as info:
        await reqs.subscribe([a, b], hint="check the account's market-data permissions")
    assert info.value.refused == {"AAA": "no entitlement", "BBB": "no entitlement"}
    assert str(info.value).startswith("[acme] the venue refused 2 symbol(s)")


async def test_requests_lost_with_the_link_fail_as_transient() -> None:
    reqs = PendingRequests("acme", timeout_s=5)
    a = reqs.open(7, ["AAA"])

    async def drop() -> None:
        await anyio.sleep(0.01)
        reqs.lose_all("the connection closed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(drop)
        with pytest.raises(ConnectionFailed, match="the connection closed"):
            await reqs.wait([a], "subscribe")
    assert a.lost and len(reqs) == 0


async def test_an_unanswered_request_times_out_and_is_forgotten() -> None:
    reqs = PendingRequests("acme", timeout_s=0.05)
    a = reqs.open(9, ["AAA"])
    with pytest.raises(ConnectionFailed, match="no answer to subscribe"):
        await reqs.wait([a], "subscribe")
    assert 9 not in reqs


def test_a_key_cannot_be_pending_twice() -> None:
    reqs = PendingRequests()
    reqs.open(1)
    with pytest.raises(ValueError, match="already pending"):
        reqs.open(1)


def test_need_data_is_a_named_sentinel() -> None:
    assert repr(kit.NEED_DATA) == "NEED_DATA"


def test_symbol_errors_are_kept_until_the_plugin_clears_them() -> None:
    sink = EventProcessor(TypedEventBus()).sink_for("x")
    sink.symbol_error("AAA", "book cannot be resynchronised")
    sink.symbol_error("AAA", "book cannot be resynchronised")  # repeated: counted once
    assert sink.symbol_errors == {"AAA": "book cannot be resynchronised"}
    assert sink.venue_errors == 1
    sink.symbol_ok("AAA")
    assert sink.symbol_errors == {}
    sink.symbol_error("BBB", "cut by the venue")
    sink.reset_session()  # a new session reports its own
    assert sink.symbol_errors == {}


KIT_MODULES = {"hub_core.plugin", "hub_core.simulation", "hub_core.testing"}
REPO = Path(__file__).resolve().parents[2]


def _core_imports(src: Path) -> set[str]:
    found: set[str] = set()
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name == "hub_core" or name.startswith("hub_core."):
                    found.add(f"{path.relative_to(src)}: {name}")
    return found


@pytest.mark.parametrize(
    "plugin",
    [
        "ninjatrader",
        "fix",
        "websocket",
    ],
)
def test_a_plugin_imports_only_the_kit(plugin: str) -> None:
    src = REPO / "plugins" / plugin / "src"
    outside = sorted(i for i in _core_imports(src) if i.rsplit(": ", 1)[1] not in KIT_MODULES)
    assert not outside, "core modules outside the kit: " + "; ".join(outside)


def test_a_diverted_sink_hands_ticks_to_callbacks_and_its_counts_to_the_real_one() -> None:
    from hub_core import Trade

    proc = EventProcessor(TypedEventBus())
    real = proc.sink_for("x")
    got: list[object] = []
    diverted = kit.divert_sink("x", got.append, got.append, got.append, got.append, got.append)
    diverted.trade_text("AAA", "1.5", "2", "B", 1, 2)
    diverted.gap("", 1, 2, "lost")
    diverted.malformed("bad frame")
    assert [type(t).__name__ for t in got] == ["Trade", "Gap"]
    assert proc.get_stats().trades_processed == 0  # nothing reached the hub's bus
    real.publish(got[0])
    assert isinstance(got[0], Trade) and proc.get_stats().trades_processed == 1
    real.take_counts(diverted)
    real.take_counts(diverted)  # idempotent until the diverted sink counts more
    assert proc.get_stats().per_exchange["x"].malformed == 1


@pytest.mark.anyio
async def test_connect_failure_names_what_anyio_wraps() -> None:
    import socket

    import anyio

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError) as err:
        await anyio.connect_tcp("127.0.0.1", port)
    assert str(err.value) == "All connection attempts failed"  # what anyio says
    assert kit.connect_failure(err.value) == "connection refused"
    assert kit.connect_failure(OSError(113, "No route to host")) == "no route to host"
    assert kit.connect_failure(TimeoutError()) == "TimeoutError"


def test_an_error_that_quotes_another_names_the_exchange_and_endpoint_once() -> None:
    inner = ConnectionFailed("login refused", exchange="acme", endpoint="127.0.0.1:9")
    outer = ConnectionFailed(
        f"[acme] session ended: {inner}", exchange="acme", endpoint="127.0.0.1:9", hint="retry"
    )
    assert str(outer) == "[acme] session ended: login refused (endpoint 127.0.0.1:9): retry"
    assert outer.message == "session ended: login refused"
    assert outer.reason == "session ended: login refused: retry"


def test_stats_print_the_names_a_user_types() -> None:
    import re

    proc = EventProcessor(TypedEventBus())
    proc.sink_for("x").venue_error(1, "x")
    stats = proc.get_stats()
    for shown in (stats, stats.per_exchange["x"]):
        pairs = re.findall(r"(\w+)=(\d+)", repr(shown))
        assert pairs, repr(shown)
        for name, value in pairs:
            assert getattr(shown, name) == int(value), (name, repr(shown))


# -- the two façades (websockets keeps its lazy exports honest the same way) -------------
APPLICATION_API = {
    "COMPILED", "PRICE_SCALE", "AuthenticationError", "BookClear", "BookSnapshot", "BookUpdate",
    "ConfigError", "ConnectionDead", "ConnectionDetails", "ConnectionFailed", "ConnectionState",
    "ConnectionStateChanged", "Credentials", "DecodeError", "EventProcessor", "EventStream",
    "ExchangeConfig", "ExchangeHub", "ExchangeId", "ExchangeRegistry", "Gap", "HubConfig",
    "HubError", "MalformedNumber", "PluginError", "ProcessorStats", "ProtocolError", "Quote",
    "RateLimited", "SequenceMismatch", "Side", "SinkConfig", "SinkStatus", "Subscription",
    "SubscriptionError", "Trade", "TypedEventBus", "format_fixed", "hookimpl", "hookspec",
    "load_config", "parse_fixed",
}  # fmt: skip
KIT_ONLY = {
    "ConnectionFactory", "ConnectionHealth", "ExchangeConnection", "PluginOptions",
    "SimulatorSpec", "PLUGIN_API_VERSION", "FrameTooLarge", "parse_fixed_bytes",
}  # fmt: skip


def test_the_top_level_all_is_the_application_api() -> None:
    import hub_core

    assert set(hub_core.__all__) == APPLICATION_API | _book_names(hub_core)
    assert not set(hub_core.__all__) & KIT_ONLY
    for name in hub_core.__all__:
        assert hasattr(hub_core, name), name


def _book_names(module: object) -> set[str]:
    return {n for n in ("OrderBook", "MboBook") if n in getattr(module, "__all__", ())}


def test_the_kit_names_live_in_the_kit_and_stay_importable_from_the_top() -> None:
    import hub_core

    assert set(kit.__all__) >= KIT_ONLY
    for name in KIT_ONLY:
        assert getattr(hub_core, name) is getattr(kit, name), name  # compatibility


def _snippets() -> list[tuple[str, str]]:
    found = []
    for page in sorted((REPO / "sdk-docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for i, block in enumerate(text.split("```python\n")[1:]):
            found.append((f"{page.relative_to(REPO)}#{i}", block.split("```", 1)[0]))
    return found


@pytest.mark.parametrize(("where", "code"), _snippets(), ids=[w for w, _ in _snippets()])
def test_a_docs_snippet_imports_only_the_kit_or_the_application_api(where: str, code: str) -> None:
    import hub_core

    tree = ast.parse(code)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "hub_core":
                bad += [a.name for a in node.names if a.name not in hub_core.__all__]
            elif node.module.startswith("hub_core.") and node.module not in KIT_MODULES:
                bad.append(node.module)
        elif isinstance(node, ast.Import):
            bad += [
                a.name
                for a in node.names
                if a.name.startswith("hub_core.") and a.name not in KIT_MODULES
            ]
    assert not bad, f"{where} imports {bad}: plugin code imports from hub_core.plugin"


async def test_an_unanswered_request_can_be_a_refusal_instead_of_a_reconnect() -> None:
    reqs = PendingRequests("acme", timeout_s=0.05, unanswered="refuse", venue="the add-on")
    a = reqs.open(1, ["AAA", "BBB"])
    b = reqs.open(2, ["CCC"])
    reqs.acknowledge(2)
    with pytest.raises(
        SubscriptionError, match=r"no subscribe acknowledgement within 0.05s for 'AAA', 'BBB'"
    ):
        await reqs.subscribe([a, b])
    assert len(reqs) == 0


async def test_a_per_symbol_refusal_before_the_answer_is_kept() -> None:
    reqs = PendingRequests("acme", timeout_s=5, venue="the add-on")
    a = reqs.open(7, ["AAA", "BBB"])
    assert reqs.refuse_symbol(7, "AAA", "unknown instrument")
    assert not reqs.refuse_symbol(8, "AAA", "late")
    assert reqs.acknowledge(7)
    with pytest.raises(SubscriptionError) as info:
        await reqs.subscribe([a])
    assert info.value.refused == {"AAA": "unknown instrument"}
    assert "the add-on refused 1 symbol(s): 'AAA' (unknown instrument)" in str(info.value)


def test_the_default_endpoint_check_refuses_an_empty_endpoint() -> None:
    """An empty endpoint means something only to a plugin that says so (Databento: the
    dataset's gateway); the default ``check_endpoint`` refuses it, at ``hub check`` time."""
    from hub_core.plugin import ConnectionFactory, ExchangeConfig, Sink

    class Bare(ConnectionFactory):
        protocol = "bare"

        def create(self, config: ExchangeConfig, sink: Sink) -> object:
            raise NotImplementedError

    with pytest.raises(ValueError, match="must not be empty"):
        Bare().check_endpoint("")
    Bare().check_endpoint("anything:1")


def test_trade_text_ms_is_trade_text_with_the_time_and_id_made_by_the_sink() -> None:
    """``sink.trade_text_ms``: ns = ms * 1e6, sequence = the id, trade_id its text; a time
    past i64 nanoseconds still gives the exact product (it is not wrapped)."""
    from hub_core import Trade

    got: dict[str, list[Trade]] = {"ms": [], "text": []}
    sinks = {}
    for name, ticks in got.items():
        bus = TypedEventBus()
        bus.subscribe(Trade, ticks.append)
        sinks[name] = EventProcessor(bus).sink_for("x")
    for ms, tid in ((1_718_000_000_123, 1_800_000_007), (0, 0), (10**16, 2**70)):
        sinks["ms"].trade_text_ms("AAA", "60000.1", "0.002", "A", ms, 5, tid)
        sinks["text"].trade_text("AAA", "60000.1", "0.002", "A", ms * 1_000_000, 5, tid, str(tid))
    assert got["ms"] == got["text"] and len(got["ms"]) == 3
    assert got["ms"][0].ts_event == 1_718_000_000_123_000_000
    assert got["ms"][0].trade_id == "1800000007" and got["ms"][0].sequence == 1_800_000_007
    assert sinks["ms"].trades == 3


def test_checked_symbols_keeps_order_drops_repeats_and_names_a_refusal() -> None:
    from hub_core.plugin import SubscriptionError, checked_symbols

    def check(symbol: str) -> str | None:
        if "|" in symbol:
            raise ValueError(f"symbol {symbol!r} has a '|'")
        return None if symbol.isupper() else symbol.upper()

    assert checked_symbols(("NQ", "es", "ES", "NQ"), check) == ["NQ", "ES"]
    with pytest.raises(SubscriptionError) as err:
        checked_symbols(["ES", "A|B"], check, exchange="acme", endpoint="h:1", hint="no bars")
    text = str(err.value)
    assert "'A|B' has a '|'" in text and "acme" in text and "no bars" in text
    with pytest.raises(TypeError, match="not one str"):
        checked_symbols("ES", check)
