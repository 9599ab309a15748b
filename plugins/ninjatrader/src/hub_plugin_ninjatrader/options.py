"""``options`` of a ``protocol = "ninjatrader"`` connection (validated by pydantic).

Example (TOML)::

    [exchanges.es_feed]
    protocol = "ninjatrader"
    endpoint = "127.0.0.1:7496"
    symbols = ["ES 03-26", "NQ 03-26"]
    options = { heartbeat_interval_s = 5, schemas = ["trades", "mbp-1"] }
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub_core.plugin import PluginOptions
from hub_plugin_ninjatrader.codec import MAX_HEARTBEAT_S, MAX_RECORD_LEN, MIN_RECORD_LEN

Schema = Literal["trades", "mbp-1", "mbo"]


def _all_schemas() -> list[Schema]:
    return ["trades", "mbp-1", "mbo"]


class NinjaTraderOptions(PluginOptions):
    """Protocol options of the NinjaTrader (HubFeed add-on) connection."""

    heartbeat_interval_s: int = Field(default=10, ge=1, le=MAX_HEARTBEAT_S)
    """Seconds of silence after which the add-on sends a heartbeat record (asked for in
    the handshake; the add-on may pick another value and says which)."""
    handshake_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long the greeting and the logon reply may take once TCP is up."""
    subscribe_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """How long ``subscribe``/``unsubscribe`` wait for the add-on's acknowledgement."""
    schemas: list[Schema] = Field(default_factory=_all_schemas, min_length=1)
    """Which record kinds to subscribe: trades, top-of-book quotes (mbp-1), depth (mbo)."""
    check_sequence: bool = True
    """Check the per-connection ``sequence`` of market-data records and publish a ``Gap``
    when one is missing (the add-on drops records for a reader that falls behind)."""
    max_record_len: int = Field(default=MAX_RECORD_LEN, ge=MIN_RECORD_LEN, le=MAX_RECORD_LEN)
    """Largest DBN record accepted, in bytes; a longer one is counted as malformed."""
    read_size: int = Field(default=65_536, ge=4_096, le=4 * 1024 * 1024)
    """Bytes asked for per socket read (each read is decoded as one buffer)."""
