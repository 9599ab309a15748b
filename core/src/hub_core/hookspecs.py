"""Pluggy hook specifications (project name ``"hub"``).

Hooks grow by new arguments only (pluggy lets an implementation take fewer
arguments than its spec), so old plugins keep working. One plugin manager
holds every hook: a plugin with an extension point of its own (the websocket
plugin's dialects) adds its hook specs in ``hub_addhooks``, as pytest's
``pytest_addhooks`` does, and other plugins implement them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from hub_core.contracts import ConnectionFactory

if TYPE_CHECKING:
    from hub_core.sinks import SinkFactory

PROJECT_NAME = "hub"
ENTRY_POINT_GROUP = "hub"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


HubPluginManager = pluggy.PluginManager
"""The plugin manager of project ``"hub"`` that every hook lives on."""


@hookspec(historic=True)
def hub_addhooks(pluginmanager: HubPluginManager) -> None:
    """Add hook specs for this plugin's own extension points (optional).

    Called once when the plugin registers, before any other hook: call
    ``pluginmanager.add_hookspecs(module)``. Plugins that implement those hooks
    may load before or after this one.
    """


@hookspec
def hub_connection_factories(  # type: ignore[empty-body]
    pluginmanager: HubPluginManager,
) -> list[ConnectionFactory]:
    """Return the connection factories this plugin provides.

    Required, except for a plugin that only implements other plugins' hooks (a
    websocket dialect, say). ``pluginmanager`` is optional to accept: a factory
    with extension points of its own reads their implementations from it.
    """


@hookspec
def hub_sink_factories(  # type: ignore[empty-body]
    pluginmanager: HubPluginManager,
) -> list[SinkFactory]:
    """Return the sink factories this plugin provides (optional): each serves the
    ``[sinks.NAME]`` tables whose ``kind`` is its ``kind``. A plugin may provide
    sinks, connections, or both (NATS: a sink and the source connection)."""


@hookspec
def hub_plugin_api_version() -> tuple[int, int]:  # type: ignore[empty-body]
    """Return the plugin API version the plugin was built for (optional;
    defaults to each factory's ``api_version``)."""
