"""The plugin as the hub and vendors see it: entry points, the ``hub_websocket_dialects``
extension point (a vendor's dialect from another distribution, found through its entry
point), options validation, and the simulator behind ``hub sim`` / ``hub demo``."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from pydantic import ValidationError

import hub_plugin_websocket
from hub_core import (
    ConfigError,
    ExchangeConfig,
    ExchangeHub,
    ExchangeRegistry,
    Trade,
    TypedEventBus,
)
from hub_core.testing import EventRecorder
from hub_plugin_websocket import DialectRegistry, WebSocketFactory
from hub_plugin_websocket.factory import DEMO_CHANNELS

VENDOR = "hub_dialect_acme_test"


def _install_vendor(
    root: Path,
    body: str,
    *,
    ep_name: str = "acme",
    module: str = VENDOR,
    group: str = "hub.websocket_dialects",
) -> None:
    """A real installed distribution on sys.path: its module and its dist-info."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{ep_name} = {module}\n")


ACME = """
    from hub_core import hookimpl
    from hub_plugin_websocket import BinanceDialect

    class AcmeDialect(BinanceDialect):
        '''A vendor's venue that happens to speak Binance's protocol.'''
        name = "acme"
        description = "ACME exchange"

    @hookimpl
    def hub_websocket_dialects():
        return [AcmeDialect()]
"""


@pytest.fixture
def vendor_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("hub_dialect_")]:
        del sys.modules[name]


def test_builtin_dialects_register_through_the_hook() -> None:
    reg = DialectRegistry(discover=False)
    assert {"binance", "binance-futures"} <= set(reg.names())
    assert {i.plugin for i in reg.infos()} == {"builtin"}
    assert reg.pm.hook.hub_websocket_dialects  # the spec lives on the plugin manager


def test_vendor_dialect_is_found_through_its_entry_point(vendor_path: Path) -> None:
    _install_vendor(vendor_path, ACME)
    reg = DialectRegistry()
    assert reg.get("acme").description == "ACME exchange"
    assert [(i.name, i.plugin) for i in reg.infos() if i.name == "acme"] == [("acme", "acme")]
    assert not reg.problems


@pytest.mark.anyio
async def test_vendor_dialect_runs_through_the_hub(vendor_path: Path) -> None:
    _install_vendor(vendor_path, ACME)
    from hub_plugin_websocket import BinanceSimulator

    registry = ExchangeRegistry()
    registry.register(hub_plugin_websocket, name="websocket")
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    async with (
        BinanceSimulator(["BTCUSDT"], rate=100) as sim,
        ExchangeHub(bus, registry=registry) as hub,
    ):
        cfg = ExchangeConfig.websocket(
            "acme", sim.endpoint, symbols=["BTCUSDT"], options={"channels": ["trade"]}
        )
        assert cfg.options["dialect"] == "acme"
        await hub.connect_exchange("acme", cfg, timeout=10)
        await rec.wait_for(lambda: len(rec.of(Trade)) >= 3, 10, "trades through acme")
        assert {t.exchange for t in rec.of(Trade)} == {"acme"}


def test_vendor_dialect_is_an_ordinary_hub_plugin(vendor_path: Path) -> None:
    """The group ``hub``: the hub's one plugin manager carries the dialect hook."""
    _install_vendor(vendor_path, ACME, group="hub")
    registry = ExchangeRegistry(allow=["websocket", "acme"])
    registry.discover()
    infos = {i.name: i for i in registry.plugins()}
    assert infos["acme"].enabled, infos["acme"].error
    assert infos["acme"].extends == ["hub_websocket_dialects"]
    factory = registry.factory("websocket")
    assert isinstance(factory, WebSocketFactory)
    assert factory.dialects.get("acme").description == "ACME exchange"
    assert factory.dialects.pm is registry.pm
    assert registry.venue("acme") == ("websocket", {"dialect": "acme"})


def test_the_old_dialect_group_still_loads_with_a_warning(
    vendor_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _install_vendor(vendor_path, ACME)
    registry = ExchangeRegistry(allow=["websocket"])
    registry.discover()
    factory = registry.factory("websocket")
    assert isinstance(factory, WebSocketFactory)
    with caplog.at_level("WARNING"):
        assert factory.dialects.get("acme").description == "ACME exchange"
    assert "deprecated" in caplog.text and "'hub'" in caplog.text


def test_a_misspelled_dialect_hook_names_the_real_one(vendor_path: Path) -> None:
    body = """
        from hub_core.plugin import hookimpl

        @hookimpl
        def hub_websocket_dialect():
            return []
    """
    _install_vendor(vendor_path, body, ep_name="typo", module="hub_dialect_typo2", group="hub")
    registry = ExchangeRegistry(allow=["websocket", "typo"])
    registry.discover()
    typo = {i.name: i for i in registry.plugins()}["typo"]
    assert not typo.enabled
    assert "hub_websocket_dialect (did you mean hub_websocket_dialects?)" in typo.error


def test_broken_vendors_are_reported_not_fatal(vendor_path: Path) -> None:
    _install_vendor(
        vendor_path, "raise RuntimeError('boom')\n", ep_name="broken", module="hub_dialect_broken"
    )
    _install_vendor(
        vendor_path,
        """
        from hub_core import hookimpl
        from hub_plugin_websocket import BinanceDialect

        class Clash(BinanceDialect):
            name = "binance"

        @hookimpl
        def hub_websocket_dialects():
            return [Clash(), object()]
        """,
        ep_name="clash",
        module="hub_dialect_clash",
    )
    _install_vendor(
        vendor_path,
        """
        from hub_core import hookimpl

        @hookimpl
        def hub_websocket_dialect():  # misspelled hook
            return []
        """,
        ep_name="typo",
        module="hub_dialect_typo",
    )
    reg = DialectRegistry()
    assert reg.names() == DialectRegistry(discover=False).names()  # only the built-ins
    problems = "\n".join(reg.problems)
    assert "'broken'" in problems and "boom" in problems
    assert "dialect 'binance' of plugin 'clash' ignored" in problems
    assert "not a named hub_plugin_websocket.Dialect" in problems
    assert "'typo' refused" in problems
    assert reg.get("binance").__class__.__name__ == "BinanceDialect"
    with pytest.raises(
        ValueError, match=r"unknown dialect 'nonesuch' \(available: binance, .*; not loaded"
    ):
        reg.get("nonesuch")


def test_in_process_registration_and_removal() -> None:
    from hub_core import hookimpl
    from hub_plugin_websocket import BinanceDialect

    class Local(BinanceDialect):
        name = "local"

    class Plugin:
        @hookimpl
        def hub_websocket_dialects(self) -> list[BinanceDialect]:
            return [Local()]

    reg = DialectRegistry(discover=False)
    try:
        assert reg.register(Plugin(), name="local-plugin") == ["local"]
        assert isinstance(reg.get("local"), Local)
    finally:
        reg.unregister("local-plugin")
    with pytest.raises(ValueError, match="unknown dialect 'local'"):
        reg.get("local")


# -- options ---------------------------------------------------------------------------------------
def _cfg(**kw: object) -> ExchangeConfig:
    options = {"dialect": "binance", "channels": ["trade"]}
    options.update(kw.pop("options", {}))  # type: ignore[arg-type]
    endpoint = str(kw.pop("endpoint", "wss://stream.binance.com:9443/ws"))
    return ExchangeConfig(
        protocol="websocket",
        endpoint=endpoint,
        name="bn",
        options=options,
        **kw,  # type: ignore[arg-type]
    )


def test_options_are_checked_against_the_dialects() -> None:
    f = WebSocketFactory(DialectRegistry(discover=False))
    opts = f.validate_options(_cfg(options={"channels": ["trade", "depth@100ms", "trade"]}))
    assert opts.channels == ["trade", "depth@100ms"] and opts.transport == "websockets"
    with pytest.raises(ValidationError, match="unknown dialect 'nonesuch'"):
        f.validate_options(_cfg(options={"dialect": "nonesuch"}))
    with pytest.raises(ValidationError, match="unknown binance channel 'ticker'"):
        f.validate_options(_cfg(options={"channels": ["ticker"]}))
    with pytest.raises(ValidationError, match="compression needs transport"):
        f.validate_options(_cfg(options={"transport": "picows", "compression": True}))
    with pytest.raises(ValidationError, match="Extra inputs"):
        f.validate_options(_cfg(options={"chanels": ["trade"]}))
    with pytest.raises(ConfigError, match=r"exchanges\.bn\.endpoint: .*ws://"):
        f.validate_options(_cfg(endpoint="ws://10.0.0.1:9443/ws"))
    with pytest.raises(ConfigError, match=r"exchanges\.bn\.backup_endpoints\[0\]"):
        f.validate_options(_cfg(backup_endpoints=["https://stream.binance.com/ws"]))
    with pytest.raises(ConfigError, match=r"exchanges\.bn\.symbols: 'btcusdt'.*upper case"):
        f.validate_options(_cfg(symbols=["btcusdt"]))


def test_the_installed_plugin_is_discovered() -> None:
    registry = ExchangeRegistry(allow=["websocket"])
    registry.discover()
    (info,) = [i for i in registry.plugins() if i.name == "websocket"]
    assert info.enabled and info.protocols == ["websocket"]
    assert info.distribution == "hub-plugin-websocket" and info.version == "0.1.0"
    factory = registry.factory("websocket")
    spec = factory.simulator()
    assert spec is not None and spec.default_symbols == ["BTCUSDT", "ETHUSDT"]
    cfg = spec.demo_config("127.0.0.1:9443", ["BTCUSDT"])
    assert cfg.endpoint == "ws://127.0.0.1:9443/ws" and cfg.name == "binance"
    assert cfg.options == {"dialect": "binance", "channels": list(DEMO_CHANNELS)}


# -- the simulator as hub demo / hub sim run it ----------------------------------------------------
@pytest.mark.anyio
async def test_simulator_spec_serves_what_demo_config_connects_to() -> None:
    spec = WebSocketFactory().simulator()
    where: list[tuple[str, int]] = []
    bus = TypedEventBus()
    rec = EventRecorder(bus)
    registry = ExchangeRegistry()
    registry.register(hub_plugin_websocket, name="websocket")
    async with anyio.create_task_group() as tg:
        ready = anyio.Event()

        def on_ready(host: str, port: int) -> None:
            where.append((host, port))
            ready.set()

        tg.start_soon(spec.serve, "127.0.0.1", 0, ["BTCUSDT"], 100.0, on_ready)
        await ready.wait()
        host, port = where[0]
        cfg = spec.demo_config(f"{host}:{port}", ["BTCUSDT"])
        async with ExchangeHub(bus, registry=registry) as hub:
            await hub.connect_exchange(cfg.name, cfg, timeout=10)
            await rec.wait_for(lambda: len(rec.of(Trade)) >= 3, 10, "demo trades")
        tg.cancel_scope.cancel()


def test_hub_sim_websocket_prints_where_it_listens() -> None:
    hub = Path(sys.executable).parent / "hub"
    if not hub.exists():
        pytest.skip("the hub console script is not installed next to this interpreter")
    out = subprocess.run(
        [str(hub), "sim", "websocket", "--duration", "0.5", "--symbols", "BTCUSDT"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.splitlines()[0].startswith("listening on 127.0.0.1:")


def test_simulator_module_runs_alone() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub_plugin_websocket.simulator",
            "--dialect",
            "binance-futures",
            "--duration",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.startswith("listening on 127.0.0.1:")


# -- documentation ---------------------------------------------------------------------------------
DOCS = Path(__file__).resolve().parents[3] / "sdk-docs"


def test_the_dialect_interface_is_documented() -> None:
    """A vendor works from sdk-docs/websocket-dialects.md alone: every hook, every public
    member of Dialect and DialectSession, and every event is named there."""
    from hub_plugin_websocket import Dialect, DialectSession, hookspecs

    text = (DOCS / "websocket-dialects.md").read_text()
    names = {"hub_websocket_dialects", hookspecs.DIALECT_ENTRY_POINT_GROUP}
    for cls in (Dialect, DialectSession):
        names |= {n for n in vars(cls) if not n.startswith("_") and n != "counters"}
    names |= {"Ack", "Refused", "NeedSnapshot", "ServerShutdown", "Notice", "RateLimits"}
    missing = sorted(n for n in names if f"`{n}" not in text)
    assert not missing, f"undocumented in websocket-dialects.md: {missing}"
    assert (DOCS / "protocols" / "websocket.md").exists()


def test_the_old_dialect_module_is_a_deprecated_alias_of_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dialects written against ``hub_plugin_websocket.dialect`` keep working: the same
    objects, and a warning that names the module to import instead."""
    from hub_plugin_websocket import codec

    monkeypatch.delitem(sys.modules, "hub_plugin_websocket.dialect", raising=False)
    with pytest.warns(DeprecationWarning, match=r"hub_plugin_websocket\.codec"):
        old = importlib.import_module("hub_plugin_websocket.dialect")
    assert set(old.__all__) == set(codec.__all__)
    for name in codec.__all__:
        assert getattr(old, name) is getattr(codec, name), name


def test_the_modules_the_dialect_guide_names_hold_what_it_says() -> None:
    """Section 10 of websocket-dialects.md maps the plugin's modules: each one it names
    imports and exports what its ``__all__`` declares, and the names the guide gives for
    a venue's package are there."""
    import re

    text = (DOCS / "websocket-dialects.md").read_text()
    rows = re.findall(r"^\| `(hub_plugin_websocket\.[\w.<>]+)` \| (.*) \|$", text, re.M)
    modules = {m for m, _ in rows} - {"hub_plugin_websocket.dialect"}
    assert "hub_plugin_websocket.codec" in modules and len(modules) >= 5
    venue_row = dict(rows).pop("hub_plugin_websocket.dialects.<venue>")
    venues = ["binance", "coinbase", "kraken"]
    modules.discard("hub_plugin_websocket.dialects.<venue>")
    for venue in venues:
        modules |= {f"hub_plugin_websocket.dialects.{venue}{part}" for part in ("", ".wire")}
        modules.add(f"hub_plugin_websocket.dialects.{venue}.session")
    for name in sorted(modules):
        module = importlib.import_module(name)
        for exported in getattr(module, "__all__", ()):
            assert hasattr(module, exported), f"{name}.{exported}"
    packages = [importlib.import_module(f"hub_plugin_websocket.dialects.{v}") for v in venues]
    for named in re.findall(r"`(\w+)`", venue_row.split("public names", 1)[1]):
        assert any(named in p.__all__ for p in packages), named
