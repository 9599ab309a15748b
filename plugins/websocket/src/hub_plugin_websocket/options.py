"""``options`` of a ``protocol = "websocket"`` connection (validated by pydantic).

Example (TOML)::

    [exchanges.binance]
    protocol = "websocket"
    endpoint = "wss://stream.binance.com:9443/ws"
    symbols = ["BTCUSDT", "ETHUSDT"]
    options = { dialect = "binance", channels = ["trade", "bookTicker", "depth@100ms"] }

``dialect`` and ``channels`` are checked against the installed dialects when
the factory validates the options (the registry is passed as validation
context), so ``hub check`` names a misspelled channel.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hub_core.plugin import PluginOptions

if TYPE_CHECKING:
    from hub_plugin_websocket.registry import DialectRegistry

__all__ = ["TransportName", "WebSocketOptions"]

TransportName = Literal["websockets", "picows"]


class WebSocketOptions(PluginOptions):
    """Protocol options of the generic JSON-over-WebSocket connection."""

    dialect: str = Field(min_length=1)
    """The venue: an installed dialect (built in: ``binance``, ``binance-futures``,
    ``coinbase``, ``kraken``; or a vendor's)."""
    channels: list[str] | None = None
    """The venue's own channel names (Binance: ``trade``, ``aggTrade``, ``bookTicker``,
    ``depth``, ``depth@100ms``, ...); default: the dialect's default channels."""
    transport: TransportName = "websockets"
    """``websockets`` (default) or ``picows`` (``pip install hub-plugin-websocket[fast]``)."""
    ca_file: Path | None = None
    """PEM file of the CA(s) to trust instead of the system store (TLS is always verified)."""
    rest_url: str | None = None
    """Base URL of the venue's REST API for book snapshots; default: the dialect's
    choice for the endpoint (Binance spot: https://api.binance.com; an unknown host:
    the endpoint's own host and port)."""
    max_frame_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    """Largest WebSocket message accepted; a larger one closes the connection."""
    ping_interval_s: float = Field(default=20.0, ge=0, le=3600)
    """Send a WebSocket ping after this much silence (0 = only when the hub probes)."""
    pong_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """A ping with no pong (nor any other frame) for this long ends the connection."""
    subscribe_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """How long a subscribe/unsubscribe waits for the venue's acknowledgement."""
    snapshot_limit: int = Field(default=1000, ge=1, le=5000)
    """Levels asked for in a REST book snapshot."""
    snapshot_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """How long one REST snapshot request may take."""
    max_buffered_events: int = Field(default=10_000, ge=10, le=1_000_000)
    """Depth events buffered per symbol while its snapshot is on its way."""
    max_connection_age_s: float = Field(default=84_600.0, gt=0, le=7 * 86_400)
    """Replace each WebSocket session after this long (default 23.5 h): Binance cuts
    every connection at 24 hours. The replacement is opened and subscribed before the
    old session is closed, and the streams are switched over without a gap or a
    duplicate (sdk-docs/protocols/websocket.md, "Rotation")."""
    rotation_overlap_s: float = Field(default=10.0, gt=0, le=600)
    """How long a rotation may run both sessions to align every stream; a stream not
    aligned by then is switched with a ``Gap``."""
    compression: bool = False
    """permessage-deflate (``websockets`` transport only): less bandwidth, more CPU."""

    @field_validator("dialect")
    @classmethod
    def _known_dialect(cls, value: str, info: ValidationInfo) -> str:
        registry = _registry(info)
        if registry is not None:
            registry.get(value)  # ValueError naming the available dialects
        return value

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> WebSocketOptions:
        if self.compression and self.transport == "picows":
            raise ValueError("compression needs transport = 'websockets' (picows has none)")
        registry = _registry(info)
        if registry is not None and self.channels is not None:
            self.channels = list(registry.get(self.dialect).validate_channels(self.channels))
        return self


def _registry(info: ValidationInfo) -> DialectRegistry | None:
    ctx = info.context
    if isinstance(ctx, dict):
        reg = ctx.get("dialects")
        if reg is not None:
            return cast("DialectRegistry", reg)
    return None
