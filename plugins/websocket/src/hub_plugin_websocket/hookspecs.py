"""The websocket plugin's own extension point: ``hub_websocket_dialects``.

A dialect is a venue (``options.dialect``). Built-in dialects register through
this hook like anybody else's. The plugin adds this spec to the hub's plugin
manager (``hub_addhooks``), so a vendor ships an ordinary hub plugin: an entry
point in the group ``hub`` pointing at a module that implements the hook with
``hub_core.plugin.hookimpl``::

    [project.entry-points.hub]
    acme = "hub_dialect_acme"

    # hub_dialect_acme/__init__.py
    from hub_core.plugin import hookimpl

    @hookimpl
    def hub_websocket_dialects():
        return [AcmeDialect()]

The group ``hub.websocket_dialects`` of earlier releases still loads, with a
deprecation warning (see sdk-docs/websocket-dialects.md).
"""

from __future__ import annotations

from typing import Final

from hub_core.plugin import hookspec
from hub_plugin_websocket.codec import Dialect

DIALECT_ENTRY_POINT_GROUP: Final = "hub.websocket_dialects"
"""Deprecated entry-point group of third-party dialect modules (use ``hub``)."""


@hookspec
def hub_websocket_dialects() -> list[Dialect]:  # type: ignore[empty-body]
    """The dialects (venues) this plugin provides."""
