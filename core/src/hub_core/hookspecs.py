"""Pluggy hook specifications (project name ``"hub"``).

Hooks grow by new arguments only (pluggy lets an implementation take fewer
arguments than its spec), so old plugins keep working.
"""

from __future__ import annotations

import pluggy

from hub_core.contracts import ConnectionFactory

PROJECT_NAME = "hub"
ENTRY_POINT_GROUP = "hub"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def hub_connection_factories() -> list[ConnectionFactory]:  # type: ignore[empty-body]
    """Return the connection factories this plugin provides (required)."""


@hookspec
def hub_plugin_api_version() -> tuple[int, int]:  # type: ignore[empty-body]
    """Return the plugin API version the plugin was built for (optional;
    defaults to each factory's ``api_version``)."""
