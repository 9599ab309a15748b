"""The websocket plugin's own extension point: ``hub_websocket_dialects``.

A dialect is a venue (``options.dialect``). Built-in dialects register through
this hook like anybody else's. A vendor ships a distribution with an entry
point in the group ``hub.websocket_dialects`` pointing at a module that
implements the hook with ``hub_core.hookimpl``::

    [project.entry-points."hub.websocket_dialects"]
    acme = "hub_dialect_acme"

    # hub_dialect_acme/__init__.py
    from hub_core.plugin import hookimpl

    @hookimpl
    def hub_websocket_dialects():
        return [AcmeDialect()]

The group is not ``hub`` because the core's registry expects every plugin
there to provide connection factories (see sdk-docs/websocket-dialects.md).
"""

from __future__ import annotations

from typing import Final

from hub_core.plugin import hookspec
from hub_plugin_websocket.dialect import Dialect

DIALECT_ENTRY_POINT_GROUP: Final = "hub.websocket_dialects"
"""Entry-point group of third-party dialect modules."""


@hookspec
def hub_websocket_dialects() -> list[Dialect]:  # type: ignore[empty-body]
    """The dialects (venues) this plugin provides."""
