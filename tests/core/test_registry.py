"""Plugin discovery through real entry points of throwaway distributions.

Each test writes a tiny distribution (a module plus a ``*.dist-info`` with
``entry_points.txt``) into a temp directory on ``sys.path``: importlib.metadata
finds it exactly as it finds a pip-installed plugin.
"""

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_core import ConfigError, ExchangeConfig, ExchangeHub, ExchangeRegistry, PluginError

PLUGIN_SOURCE = """
from pydantic import BaseModel
from hub_core import ConnectionFactory, hookimpl, PluginOptions


class Options(PluginOptions):
    depth: int = 5


class Factory(ConnectionFactory):
    protocol = {protocol!r}
    options_model = Options
    api_version = {api!r}

    def create(self, config, sink):
        raise RuntimeError("not used in these tests")


@hookimpl
def hub_connection_factories():
    return [Factory()]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("throwaway_"):
            del sys.modules[name]


def make_dist(
    site: Path,
    name: str,
    protocol: str,
    *,
    api: tuple[int, int] = (1, 0),
    source: str | None = None,
    version: str = "0.3.1",
) -> None:
    module = f"throwaway_{name.replace('-', '_')}"
    (site / f"{module}.py").write_text(source or PLUGIN_SOURCE.format(protocol=protocol, api=api))
    info = site / f"hub_plugin_{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: hub-plugin-{name}\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text(f"[hub]\n{name} = {module}\n")


def test_third_party_plugin_is_discovered(site: Path) -> None:
    make_dist(site, "acme", "acme-proto")
    reg = ExchangeRegistry()
    reg.discover()
    info = {p.name: p for p in reg.plugins()}["acme"]
    assert info.enabled and info.protocols == ["acme-proto"]
    assert info.distribution == "hub-plugin-acme" and info.version == "0.3.1"
    assert reg.factory("acme-proto").protocol == "acme-proto"


def test_allow_list_excludes_it(site: Path) -> None:
    make_dist(site, "acme", "acme-proto")
    reg = ExchangeRegistry(allow=["something-else"])
    reg.discover()
    info = {p.name: p for p in reg.plugins()}["acme"]
    assert not info.enabled and "disabled" in info.error
    assert "throwaway_acme" not in sys.modules  # never even imported
    with pytest.raises(ConfigError, match="unknown protocol 'acme-proto'"):
        reg.factory("acme-proto")
    missing = {p.name: p for p in reg.plugins()}["something-else"]
    assert "not installed" in missing.error


def test_deny_list(site: Path) -> None:
    make_dist(site, "acme", "acme-proto")
    reg = ExchangeRegistry(deny=["acme"])
    reg.discover()
    assert not {p.name: p for p in reg.plugins()}["acme"].enabled


def test_a_denied_plugin_is_blocked_in_the_plugin_manager(site: Path) -> None:
    make_dist(site, "acme", "acme-proto")
    reg = ExchangeRegistry(deny=["acme"])
    reg.discover()
    assert reg.pm.is_blocked("acme") and not reg.pm.has_plugin("acme")
    assert "throwaway_acme" not in sys.modules  # never even imported


HOST_SOURCE = """
from hub_core.plugin import ConnectionFactory, hookimpl, hookspec


class Specs:
    @hookspec
    def hub_widget_kinds():
        "The host plugin's own extension point."


class Factory(ConnectionFactory):
    protocol = "host-proto"

    def __init__(self, pm):
        self.pm = pm

    def kinds(self):
        return sorted(k for group in self.pm.hook.hub_widget_kinds() for k in group)

    def create(self, config, sink):
        raise RuntimeError("not used in these tests")


@hookimpl
def hub_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(Specs)


@hookimpl
def hub_connection_factories(pluginmanager):
    return [Factory(pluginmanager)]
"""

EXTENSION_SOURCE = """
from hub_core.plugin import hookimpl


@hookimpl
def hub_widget_kinds():
    return [{kind!r}]
"""

TYPO_SOURCE = """
from hub_core.plugin import hookimpl


@hookimpl
def hub_widget_kind():  # misspelled
    return ["never"]
"""


def test_a_plugin_adds_hooks_that_others_implement_in_any_load_order(site: Path) -> None:
    # "aaa" loads before the host that specifies its hook, "zzz" after it
    make_dist(site, "aaa", "", source=EXTENSION_SOURCE.format(kind="early"))
    make_dist(site, "host", "", source=HOST_SOURCE)
    make_dist(site, "zzz", "", source=EXTENSION_SOURCE.format(kind="late"))
    reg = ExchangeRegistry()
    reg.discover()
    infos = {p.name: p for p in reg.plugins()}
    assert infos["aaa"].enabled and infos["zzz"].enabled, (infos["aaa"], infos["zzz"])
    assert infos["aaa"].extends == ["hub_widget_kinds"] and infos["aaa"].protocols == []
    assert reg.factory("host-proto").kinds() == ["early", "late"]  # type: ignore[attr-defined]


def test_a_misspelled_hook_is_refused_with_the_closest_name(site: Path) -> None:
    make_dist(site, "aaa", "", source=TYPO_SOURCE)
    make_dist(site, "host", "", source=HOST_SOURCE)
    reg = ExchangeRegistry()
    reg.discover()
    typo = {p.name: p for p in reg.plugins()}["aaa"]
    assert not typo.enabled
    assert "hub_widget_kind (did you mean hub_widget_kinds?)" in typo.error
    assert not reg.pm.has_plugin("aaa")
    assert reg.factory("host-proto").kinds() == []  # type: ignore[attr-defined]


def test_a_plugin_with_neither_factories_nor_hooks_is_refused(site: Path) -> None:
    make_dist(site, "empty", "", source="x = 1\n")
    reg = ExchangeRegistry()
    reg.discover()
    assert {p.name: p for p in reg.plugins()}["empty"].error == "provides no connection factory"


VENUES = "    def venues(self):\n        return {'bolt': {'dialect': 'bolt'}}\n\n    def create("


def test_a_venue_name_as_protocol_gets_the_plugin_and_option_to_write(site: Path) -> None:
    source = PLUGIN_SOURCE.format(protocol="multi", api=(1, 0)).replace("    def create(", VENUES)
    make_dist(site, "multi", "", source=source)
    reg = ExchangeRegistry()
    reg.discover()
    assert reg.venue("bolt") == ("multi", {"dialect": "bolt"})
    with pytest.raises(ConfigError) as err:
        reg.factory("bolt", exchange="b")
    assert 'write protocol = "multi" with options = { dialect = "bolt" }' in str(err.value)
    with pytest.raises(ConfigError) as err:
        reg.factory("nosuch", exchange="n")
    assert "NAME" not in str(err.value) and "hub plugins" in str(err.value)


def test_two_plugins_claiming_one_protocol(site: Path) -> None:
    make_dist(site, "acme", "shared-proto")
    make_dist(site, "bolt", "shared-proto")
    reg = ExchangeRegistry()
    reg.discover()
    with pytest.raises(PluginError, match=r"claimed by plugins 'acme' and 'bolt'") as err:
        reg.factory("shared-proto", exchange="x")
    assert "disable" in str(err.value)


def test_plugin_that_fails_to_import_does_not_take_the_hub_down(site: Path) -> None:
    make_dist(site, "broken", "broken-proto", source="raise ImportError('missing libfoo')\n")
    make_dist(site, "acme", "acme-proto")
    reg = ExchangeRegistry()
    reg.discover()
    infos = {p.name: p for p in reg.plugins()}
    assert not infos["broken"].enabled and "missing libfoo" in infos["broken"].error
    assert infos["acme"].enabled
    with pytest.raises(ConfigError, match="broken"):
        reg.factory("broken-proto")


def test_incompatible_api_version_is_refused_naming_both(site: Path) -> None:
    make_dist(site, "future", "future-proto", api=(2, 0))
    make_dist(site, "newer-minor", "nm-proto", api=(1, 9))
    reg = ExchangeRegistry()
    reg.discover()
    infos = {p.name: p for p in reg.plugins()}
    assert not infos["future"].enabled
    assert "plugin API 2.0" in infos["future"].error and "offers 1.0" in infos["future"].error
    assert not infos["newer-minor"].enabled


def test_declared_api_version_hook_overrides_the_factories(site: Path) -> None:
    source = (
        PLUGIN_SOURCE.format(protocol="declared-proto", api=(1, 0))
        + """

@hookimpl
def hub_plugin_api_version():
    return (2, 1)
"""
    )
    make_dist(site, "declared", "declared-proto", source=source)
    reg = ExchangeRegistry()
    reg.discover()
    info = {p.name: p for p in reg.plugins()}["declared"]
    assert not info.enabled and info.api_version == (2, 1)
    assert "plugin API 2.1" in info.error


def test_in_process_registration_and_option_validation(site: Path) -> None:
    make_dist(site, "acme", "acme-proto")
    import importlib

    mod = importlib.import_module("throwaway_acme")
    reg = ExchangeRegistry()
    reg.register(mod, name="acme-inproc")
    factory = reg.factory("acme-proto")
    cfg = ExchangeConfig(protocol="acme-proto", endpoint="127.0.0.1:1", options={"depth": 3})
    assert factory.validate_options(cfg).model_dump() == {"depth": 3}
    reg.unregister("acme-inproc")
    with pytest.raises(ConfigError):
        reg.factory("acme-proto")


def test_hub_from_toml_names_the_bad_option(site: Path, tmp_path: Path) -> None:
    make_dist(site, "acme", "acme-proto")
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        textwrap.dedent("""
        [hub]
        plugins = ["acme"]
        [exchanges.a1]
        protocol = "acme-proto"
        endpoint = "127.0.0.1:1"
        options = { depth = "deep", colour = 1 }
    """)
    )
    with pytest.raises(ConfigError, match=r"exchanges\.a1\.options\.depth"):
        ExchangeHub.from_toml(cfg)
