"""``DialectRegistry``: finds dialects through the ``hub_websocket_dialects`` hook.

Inside the hub the registry reads the hub's one plugin manager: this plugin
adds its hook spec there (``hub_addhooks``), and a vendor's dialect is an
ordinary hub plugin (entry-point group ``hub``) that implements
``hub_websocket_dialects`` with ``hub_core.plugin.hookimpl``. Standalone
(``DialectRegistry()``) it keeps a manager of its own with the same spec.
The built-in dialects register through the hook like anybody else's. The old
entry-point group ``hub.websocket_dialects`` still loads, with a deprecation
warning, for one release. A module that fails to load or returns something
that is not a ``Dialect`` is reported (``problems``) and left out; it never
stops the others. Two dialects with one name: the first keeps it, the second
is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from hub_core.plugin import PROJECT_NAME, HubPluginManager
from hub_plugin_websocket import hookspecs
from hub_plugin_websocket.codec import Dialect

log = logging.getLogger("hub_plugin_websocket.registry")

__all__ = ["DialectInfo", "DialectRegistry"]


@dataclass
class DialectInfo:
    """Where a dialect came from (``hub plugins``-style reporting)."""

    name: str
    plugin: str
    description: str = ""


class DialectRegistry:
    """Dialect name -> ``Dialect``, from the hook of every registered plugin."""

    def __init__(
        self,
        *,
        builtin: bool = True,
        discover: bool = True,
        pluginmanager: HubPluginManager | None = None,
    ) -> None:
        if pluginmanager is None:
            pluginmanager = pluggy.PluginManager(PROJECT_NAME)
        self.pm = pluginmanager
        """Where the dialect plugins are registered (the hub's manager, or our own)."""
        if not hasattr(self.pm.hook, "hub_websocket_dialects"):
            self.pm.add_hookspecs(hookspecs)
        self._dialects: dict[str, Dialect] = {}
        self._infos: dict[str, DialectInfo] = {}
        self._harvested: set[str] = set()
        self.problems: list[str] = []
        """One line per plugin or dialect that was left out, and why."""
        self._discovered = not discover
        if builtin:
            from hub_plugin_websocket import dialects

            self.register(dialects, name="builtin")

    # -- loading -------------------------------------------------------------------------
    def discover(self) -> None:
        """Take the dialects of every plugin on the manager, then load the deprecated
        ``hub.websocket_dialects`` entry-point group (once)."""
        self._harvest_registered()
        if self._discovered:
            return
        self._discovered = True
        group = hookspecs.DIALECT_ENTRY_POINT_GROUP
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            if self.pm.has_plugin(ep.name) or self.pm.is_blocked(ep.name):
                continue
            log.warning(
                "dialect plugin %r uses the entry-point group %r, which is deprecated: "
                "declare it in the group 'hub' instead",
                ep.name,
                group,
            )
            try:
                module = ep.load()
            except Exception as exc:  # one broken vendor never hides the others
                self._problem(f"dialect plugin {ep.name!r} ({ep.value}) failed to load: {exc!r}")
                continue
            self.register(module, name=ep.name)

    def _harvest_registered(self) -> None:
        """Dialects of plugins the hub registered on the manager since the last look."""
        for name, plugin in self.pm.list_name_plugin():
            if name in self._harvested or plugin is None:
                continue
            callers = self.pm.get_hookcallers(plugin) or []
            if any(hc.name == "hub_websocket_dialects" for hc in callers):
                self._take(plugin, name)

    def register(self, plugin: object, name: str | None = None) -> list[str]:
        """Register a module or object implementing ``hub_websocket_dialects``; returns the
        names of the dialects it added."""
        pname = name or getattr(plugin, "__name__", None) or repr(plugin)
        if self.pm.get_plugin(pname) is plugin:  # a second registry on the same manager
            return [] if pname in self._harvested else self._take(plugin, pname)
        try:
            self.pm.register(plugin, name=pname)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._problem(f"dialect plugin {pname!r} refused: {exc}")
            return []
        return self._take(plugin, pname)

    def _take(self, plugin: object, pname: str) -> list[str]:
        """Call one plugin's ``hub_websocket_dialects`` and keep what it returns."""
        self._harvested.add(pname)
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        caller = self.pm.subset_hook_caller("hub_websocket_dialects", remove_plugins=others)
        try:
            groups = list(caller())
        except Exception as exc:
            self.pm.unregister(plugin)
            self._problem(f"dialect plugin {pname!r}: hub_websocket_dialects() raised {exc!r}")
            return []
        added: list[str] = []
        for group in groups:
            for dialect in group or []:
                if not isinstance(dialect, Dialect) or not dialect.name:
                    self._problem(
                        f"dialect plugin {pname!r} returned {dialect!r}, which is not a "
                        "named hub_plugin_websocket.Dialect"
                    )
                    continue
                owner = self._infos.get(dialect.name)
                if owner is not None:
                    self._problem(
                        f"dialect {dialect.name!r} of plugin {pname!r} ignored: plugin "
                        f"{owner.plugin!r} already provides it"
                    )
                    continue
                self._dialects[dialect.name] = dialect
                self._infos[dialect.name] = DialectInfo(dialect.name, pname, dialect.description)
                added.append(dialect.name)
        return added

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name`` and its dialects."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self._harvested.discard(name)
        for dialect in [d for d, info in self._infos.items() if info.plugin == name]:
            del self._infos[dialect]
            del self._dialects[dialect]

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        log.error("%s", text)

    # -- queries ---------------------------------------------------------------------------
    def get(self, name: str) -> Dialect:
        """The dialect called ``name``; ``ValueError`` naming the available ones otherwise."""
        dialect = self._dialects.get(name)
        if dialect is None:
            self.discover()
            dialect = self._dialects.get(name)
        if dialect is None:
            known = ", ".join(sorted(self._dialects)) or "none"
            extra = f"; not loaded: {'; '.join(self.problems)}" if self.problems else ""
            raise ValueError(
                f"unknown dialect {name!r} (available: {known}{extra}); a vendor's dialect "
                "is installed with its package (a hub plugin implementing hub_websocket_dialects)"
            )
        return dialect

    def names(self) -> list[str]:
        """Every dialect name, after loading the entry points."""
        self.discover()
        return sorted(self._dialects)

    def infos(self) -> list[DialectInfo]:
        """Every dialect with the plugin that provides it."""
        self.discover()
        return [self._infos[n] for n in sorted(self._infos)]
