"""``options`` of a NATS sink (``[sinks.<name>] kind = "nats"``) and of a NATS source
connection (``[exchanges.<name>] protocol = "nats"``), validated by pydantic.

Example (TOML)::

    [sinks.fanout]
    kind = "nats"
    url = "nats://127.0.0.1:4222"
    options = { prefix = "md", jetstream = true, stream = "HUB_MD", max_age_s = 3600 }

    [exchanges.remote]
    protocol = "nats"
    endpoint = "nats://127.0.0.1:4222"
    symbols = ["md.binance.>", "md.*.trade.*"]
    options = { prefix = "md" }
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hub_plugin_nats.common import NatsAuthOptions


class NatsSinkOptions(NatsAuthOptions):
    """Options of a NATS sink."""

    publisher: str = Field(default="", max_length=64)
    """This hub's name on its heartbeat subject (default: ``<host>-<pid>``); give each
    shard its own."""
    heartbeat_ms: int = Field(default=1000, ge=50, le=60_000)
    """How often the sink publishes a heartbeat; a receiver calls a publisher silent for
    three intervals stale."""
    jetstream: bool = False
    """Publish into a JetStream stream (created or updated with the limits below), with a
    ``Nats-Msg-Id`` per message so a retried batch is stored once."""
    stream: str = Field(default="HUB_TICKS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """The JetStream stream's name; it captures ``<prefix>.>``."""
    max_age_s: float = Field(default=86_400.0, gt=0)
    """How long the stream keeps a message (seconds)."""
    max_bytes: int = Field(default=1 << 30, ge=-1)
    """The stream's size limit in bytes (-1: none); the oldest messages go first."""
    duplicate_window_s: float = Field(default=120.0, gt=0, le=86_400)
    """How long JetStream remembers a ``Nats-Msg-Id`` to drop a repeat."""
    storage: str = Field(default="file", pattern=r"^(file|memory)$")
    """Where the stream lives: ``file`` or ``memory``."""
    ack_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long a batch waits for JetStream's acknowledgements before the link counts as
    broken (and the batch is sent again)."""


class NatsSourceOptions(NatsAuthOptions):
    """Options of a NATS source connection."""

    jetstream: bool = False
    """Read from a JetStream stream (an ordered consumer) instead of the live subjects."""
    stream: str = Field(default="HUB_TICKS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """The JetStream stream to read (with ``jetstream``)."""
    start_time: datetime | None = None
    """With ``jetstream``: replay from this time (RFC 3339, e.g. ``2026-12-04T20:00:00Z``);
    unset: only new messages."""
    pending_msgs_limit: int = Field(default=65_536, ge=16, le=10_000_000)
    """Messages a subscription holds before NATS drops (a slow consumer: counted, a Gap)."""
    pending_bytes_limit: int = Field(default=256 * 1024 * 1024, ge=65_536)
    """Bytes a subscription holds before NATS drops."""
    heartbeats: bool = True
    """Watch the publishers' heartbeats (``<prefix>._hb.*``): a silent one is reported, one
    that restarted is a Gap for its silence."""
    stale_factor: float = Field(default=3.0, ge=1.5, le=100)
    """A publisher silent for this many heartbeat intervals is stale."""
