"""``DialectRegistry``: finds dialects through the ``hub_websocket_dialects`` hook.

It owns a pluggy ``PluginManager`` of project ``"hub"`` (so vendors mark their
hook with ``hub_core.hookimpl``) carrying this plugin's hook spec. The
built-in dialects are registered first; third-party modules come from the
entry-point group ``hub.websocket_dialects`` (loaded on first use) or from
``register()`` in-process. A module that fails to load or returns something
that is not a ``Dialect`` is reported (``problems``) and left out; it never
stops the others. Two dialects with one name: the first keeps it, the second
is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from hub_core.plugin import PROJECT_NAME
from hub_plugin_websocket import hookspecs
from hub_plugin_websocket.dialect import Dialect

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

    def __init__(self, *, builtin: bool = True, discover: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._dialects: dict[str, Dialect] = {}
        self._infos: dict[str, DialectInfo] = {}
        self.problems: list[str] = []
        """One line per plugin or dialect that was left out, and why."""
        self._discovered = not discover
        if builtin:
            from hub_plugin_websocket import dialects

            self.register(dialects, name="builtin")

    # -- loading -------------------------------------------------------------------------
    def discover(self) -> None:
        """Load every module of the ``hub.websocket_dialects`` entry-point group (once)."""
        if self._discovered:
            return
        self._discovered = True
        group = hookspecs.DIALECT_ENTRY_POINT_GROUP
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            if self.pm.has_plugin(ep.name):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # one broken vendor never hides the others
                self._problem(f"dialect plugin {ep.name!r} ({ep.value}) failed to load: {exc!r}")
                continue
            self.register(module, name=ep.name)

    def register(self, plugin: object, name: str | None = None) -> list[str]:
        """Register a module or object implementing ``hub_websocket_dialects``; returns the
        names of the dialects it added."""
        pname = name or getattr(plugin, "__name__", None) or repr(plugin)
        try:
            self.pm.register(plugin, name=pname)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._problem(f"dialect plugin {pname!r} refused: {exc}")
            return []
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
                "is installed with its package (entry-point group hub.websocket_dialects)"
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
