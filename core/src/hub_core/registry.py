"""``ExchangeRegistry``: finds plugins through entry points and pluggy.

A plugin that fails to import, was built for an incompatible plugin API, or
claims a protocol another plugin already claims is reported (``plugins()``,
``hub plugins``) and left out; the hub starts with the rest.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from hub_core import hookspecs
from hub_core.contracts import PLUGIN_API_VERSION, ConnectionFactory
from hub_core.errors import ConfigError, PluginError

if TYPE_CHECKING:
    from hub_core.sinks import SinkFactory

log = logging.getLogger("hub_core.registry")

_CORE_HOOKS = frozenset(
    {"hub_connection_factories", "hub_sink_factories", "hub_plugin_api_version", "hub_addhooks"}
)


@dataclass
class PluginInfo:
    """What ``hub plugins`` shows for one plugin."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    protocols: list[str] = field(default_factory=list)
    sinks: list[str] = field(default_factory=list)
    """The sink kinds it provides (``[sinks.NAME] kind``)."""
    extends: list[str] = field(default_factory=list)
    """Hooks of other plugins this plugin implements (e.g. ``hub_websocket_dialects``)."""
    api_version: tuple[int, int] | None = None
    enabled: bool = True
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "protocols": self.protocols,
            "sinks": self.sinks,
            "extends": self.extends,
            "api_version": ".".join(map(str, self.api_version)) if self.api_version else None,
            "enabled": self.enabled,
            "error": self.error,
        }


def api_compatible(plugin: tuple[int, int], core: tuple[int, int] = PLUGIN_API_VERSION) -> bool:
    """Same major version, and the plugin needs no newer minor than the core has."""
    return plugin[0] == core[0] and plugin[1] <= core[1]


class ExchangeRegistry:
    """Plugin discovery and the protocol -> factory table.

    ``allow`` is the TOML allow-list (``None``: every discovered plugin);
    ``deny`` is removed after it. ``discover()`` loads entry points of group
    ``hub``; ``register(module_or_object, name)`` adds one in-process (tests,
    embedding applications).
    """

    def __init__(
        self,
        allow: Iterable[str] | None = None,
        deny: Iterable[str] = (),
    ) -> None:
        self.allow = None if allow is None else list(allow)
        self.deny = set(deny)
        self.pm: hookspecs.HubPluginManager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        """The one plugin manager of every hook, the core's and those plugins add."""
        self.pm.add_hookspecs(hookspecs)
        # historic: every plugin that registers later is called at once
        self.pm.hook.hub_addhooks.call_historic(kwargs={"pluginmanager": self.pm})
        for name in self.deny:
            self.pm.set_blocked(name)  # pluggy then never loads nor registers it
        self._infos: dict[str, PluginInfo] = {}
        self._factories: dict[str, ConnectionFactory] = {}
        self._owners: dict[str, str] = {}
        self._conflicts: dict[str, list[str]] = {}
        self._sink_factories: dict[str, SinkFactory] = {}
        self._sink_owners: dict[str, str] = {}

    # -- discovery --------------------------------------------------------------
    def discover(self) -> list[PluginInfo]:
        """Load every allowed entry point of group ``hub``; never raises for one plugin."""
        eps = sorted(entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name)
        for ep in eps:
            self._load_entry_point(ep)
        # only now: a hook may be specified by a plugin that loads after its implementer
        self._refuse_unknown_hooks()
        if self.allow is not None:
            found = {ep.name for ep in eps}
            for name in self.allow:
                if name not in found and name not in self._infos:
                    self._infos[name] = PluginInfo(
                        name=name,
                        enabled=False,
                        error="listed in [hub] plugins but not installed "
                        "(`hub plugins` lists what is installed)",
                    )
        return self.plugins()

    def _allowed(self, name: str) -> bool:
        if name in self.deny:
            return False
        return self.allow is None or name in self.allow

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            distribution=dist.name if dist is not None else "",
            version=dist.version if dist is not None else "",
            module=ep.value,
        )
        self._infos[ep.name] = info
        if not self._allowed(ep.name):
            info.enabled = False
            info.error = "disabled by the config's plugin list"
            return
        if self.pm.has_plugin(ep.name):
            return
        try:
            # public pluggy API; name= loads just this one entry point
            self.pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP, name=ep.name)
        except Exception as exc:  # a broken plugin never takes the hub down
            info.enabled = False
            info.error = f"failed to load: {type(exc).__name__}: {exc}"
            log.error("plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)
            return
        plugin = self.pm.get_plugin(ep.name)
        self._collect(ep.name, plugin, info)

    def register(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin module or object in-process (bypasses entry points)."""
        pname = name or getattr(plugin, "__name__", None) or repr(plugin)
        info = PluginInfo(name=pname, module=getattr(plugin, "__name__", ""))
        self._infos[pname] = info
        if not self._allowed(pname):
            info.enabled = False
            info.error = "disabled by the config's plugin list"
            return info
        try:
            self.pm.register(plugin, name=pname)
        except Exception as exc:
            info.enabled = False
            info.error = f"failed to register: {exc}"
            return info
        self._collect(pname, plugin, info)
        if info.enabled:
            self._refuse_unknown_hooks()
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin registered in-process, and its protocols."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self._infos.pop(name, None)
        for proto in [p for p, owner in self._owners.items() if owner == name]:
            del self._owners[proto]
            self._factories.pop(proto, None)
        for kind in [k for k, owner in self._sink_owners.items() if owner == name]:
            del self._sink_owners[kind]
            self._sink_factories.pop(kind, None)

    def _collect(self, name: str, plugin: object, info: PluginInfo) -> None:
        try:
            impls = self._hook_results(name, "hub_connection_factories", pluginmanager=self.pm)
            declared = self._hook_results(name, "hub_plugin_api_version")
        except Exception as exc:
            self._refuse(name, plugin, info, f"hub_connection_factories() raised: {exc!r}")
            return
        try:
            sink_impls = self._hook_results(name, "hub_sink_factories", pluginmanager=self.pm)
        except Exception as exc:
            self._refuse(name, plugin, info, f"hub_sink_factories() raised: {exc!r}")
            return
        factories: list[ConnectionFactory] = [f for group in impls for f in (group or [])]
        sink_factories: list[SinkFactory] = [f for group in sink_impls for f in (group or [])]
        info.extends = sorted(
            hc.name for hc in self.pm.get_hookcallers(plugin) or [] if hc.name not in _CORE_HOOKS
        )
        if not factories and not sink_factories and not info.extends:
            self._refuse(name, plugin, info, "provides no connection factory")
            return
        if declared:
            version = tuple(declared[0])
        elif factories:
            version = factories[0].api_version
        elif sink_factories:
            version = sink_factories[0].api_version
        else:
            version = PLUGIN_API_VERSION  # an extension only: its host plugin checks it
        info.api_version = (int(version[0]), int(version[1]))
        if not api_compatible(info.api_version):
            self._refuse(
                name,
                plugin,
                info,
                f"built for plugin API {info.api_version[0]}.{info.api_version[1]}, "
                f"but this hub-core offers {PLUGIN_API_VERSION[0]}.{PLUGIN_API_VERSION[1]}: "
                "install a matching version of the plugin or of hub-core",
            )
            return
        for factory in factories:
            proto = factory.protocol
            if not proto:
                self._refuse(name, plugin, info, f"factory {factory!r} has no protocol name")
                return
            owner = self._owners.get(proto)
            if owner is not None and owner != name:
                self._conflicts.setdefault(proto, [owner]).append(name)
                info.error = (
                    f"protocol {proto!r} is also claimed by plugin {owner!r}: "
                    f"disable one of them ([hub] disabled_plugins) or uninstall it"
                )
                log.error("plugins %r and %r both claim protocol %r", owner, name, proto)
                continue
            self._owners[proto] = name
            self._factories[proto] = factory
            info.protocols.append(proto)
        for sink_factory in sink_factories:
            kind = sink_factory.kind
            if not kind:
                self._refuse(name, plugin, info, f"sink factory {sink_factory!r} has no kind")
                return
            owner = self._sink_owners.get(kind)
            if owner is not None and owner != name:
                info.error = (
                    f"sink kind {kind!r} is also provided by plugin {owner!r}: "
                    "disable one of them ([hub] disabled_plugins) or uninstall it"
                )
                log.error("plugins %r and %r both provide sink kind %r", owner, name, kind)
                continue
            self._sink_owners[kind] = name
            self._sink_factories[kind] = sink_factory
            info.sinks.append(kind)

    def _hook_results(self, name: str, hook_name: str, **kwargs: object) -> list[Any]:
        """Results of one hook for one plugin only."""
        plugin = self.pm.get_plugin(name)
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
        return list(caller(**kwargs))

    def _refuse_unknown_hooks(self) -> None:
        """Refuse each plugin that implements a hook no loaded plugin specifies (a
        misspelled name), naming the closest real hook."""
        known = [n for n, hc in vars(self.pm.hook).items() if getattr(hc, "spec", None)]
        for name, info in list(self._infos.items()):
            plugin = self.pm.get_plugin(name)
            if plugin is None or not info.enabled:
                continue
            unknown = [
                hc.name
                for hc in self.pm.get_hookcallers(plugin) or []
                if hc.spec is None
                and any(i.plugin is plugin and not i.optionalhook for i in hc.get_hookimpls())
            ]
            if not unknown:
                continue
            texts = []
            for hook in sorted(unknown):
                close = difflib.get_close_matches(hook, known, n=1)
                texts.append(hook + (f" (did you mean {close[0]}?)" if close else ""))
            self._refuse(
                name,
                plugin,
                info,
                "implements hooks that no installed plugin defines: " + ", ".join(texts),
            )
            for proto in [p for p, owner in self._owners.items() if owner == name]:
                del self._owners[proto]
                self._factories.pop(proto, None)
            info.protocols.clear()

    def _refuse(self, name: str, plugin: object, info: PluginInfo, why: str) -> None:
        info.enabled = False
        info.error = why
        log.error("plugin %r refused: %s", name, why)
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    # -- queries ----------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, enabled or not, with versions and errors."""
        return sorted(self._infos.values(), key=lambda i: i.name)

    def protocols(self) -> list[str]:
        return sorted(self._factories)

    def factories(self) -> dict[str, ConnectionFactory]:
        return dict(self._factories)

    def factory(self, protocol: str, *, exchange: str = "") -> ConnectionFactory:
        """The factory for ``protocol``; a clear error if none or ambiguous."""
        if protocol in self._conflicts:
            owners = " and ".join(repr(o) for o in self._conflicts[protocol])
            raise PluginError(
                f"protocol {protocol!r} is claimed by plugins {owners}",
                exchange=exchange,
                hint="disable all but one with [hub] plugins / disabled_plugins, "
                "or uninstall the others",
            )
        factory = self._factories.get(protocol)
        if factory is None:
            known = ", ".join(self.protocols()) or "none"
            broken = [i for i in self._infos.values() if i.error and i.enabled is False]
            extra = ""
            if broken:
                extra = "; plugins not loaded: " + ", ".join(
                    f"{i.name} ({i.error})" for i in broken
                )
            venue = self.venue(protocol)
            if venue is not None:
                owner, options = venue
                written = ", ".join(f"{k} = {v!r}" for k, v in options.items()).replace("'", '"')
                hint = f'write protocol = "{owner}" with options = {{ {written} }}'
            else:
                hint = (
                    "fix the protocol name, or install the plugin that provides "
                    f"{protocol!r} (`hub plugins` lists what is installed)"
                )
            raise ConfigError(
                f"unknown protocol {protocol!r} (available: {known}{extra})",
                exchange=exchange,
                hint=hint,
            )
        return factory

    def sink_kinds(self) -> list[str]:
        return sorted(self._sink_factories)

    def sink_factory(self, kind: str, *, sink: str = "") -> SinkFactory:
        """The factory of sink ``kind``; a ``ConfigError`` naming what is installed if none."""
        factory = self._sink_factories.get(kind)
        if factory is None:
            known = ", ".join(self.sink_kinds()) or "none"
            raise ConfigError(
                f"sink {sink!r}: unknown sink kind {kind!r} (available: {known})",
                hint=f"fix the kind, or install the plugin that provides {kind!r} sinks "
                "(`hub plugins` lists what is installed)",
            )
        return factory

    def venue(self, name: str) -> tuple[str, dict[str, str]] | None:
        """The protocol and options that serve venue ``name`` (``"binance"`` →
        ``("websocket", {"dialect": "binance"})``), from each factory's ``venues()``."""
        for protocol, factory in sorted(self._factories.items()):
            try:
                options = factory.venues().get(name)
            except Exception as exc:  # one broken plugin never hides the others
                log.error("the %s plugin's venues() raised: %r", protocol, exc)
                continue
            if options is not None:
                return protocol, dict(options)
        return None

    @property
    def modules(self) -> list[ModuleType]:
        return [p for p in self.pm.get_plugins() if isinstance(p, ModuleType)]
