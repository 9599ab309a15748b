"""``options`` of a ``protocol = "databento"`` connection (validated by pydantic).

Example (TOML)::

    [exchanges.glbx]
    protocol = "databento"
    endpoint = ""                # Databento's live gateway for the dataset; host:port overrides
    symbols = ["ESZ6", "NQZ6"]
    options = { dataset = "GLBX.MDP3", schemas = ["trades", "mbp-1"], stype_in = "raw_symbol" }
    [exchanges.glbx.credentials]
    api_key_env = "DATABENTO_API_KEY"
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from hub_core.plugin import PluginOptions

Schema = Literal["trades", "tbbo", "mbp-1", "mbp-10", "mbo", "bbo-1s", "bbo-1m"]
SType = Literal["raw_symbol", "instrument_id", "parent", "continuous"]


def _default_schemas() -> list[Schema]:
    return ["trades", "mbp-1"]


class DatabentoOptions(PluginOptions):
    """Protocol options of a Databento live connection."""

    dataset: str = Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9]+\.[A-Z0-9]+$")
    """The Databento dataset, e.g. ``GLBX.MDP3`` (CME Globex) or ``XNAS.ITCH``."""
    schemas: list[Schema] = Field(default_factory=_default_schemas, min_length=1)
    """Which schemas to subscribe for every symbol: ``trades`` -> Trade; ``mbp-1``,
    ``tbbo``, ``bbo-1s``, ``bbo-1m`` -> Quote (and Trade for a trade record);
    ``mbp-10`` -> BookSnapshot; ``mbo`` -> BookUpdate (order by order)."""
    stype_in: SType = "raw_symbol"
    """How ``symbols`` are written: ``raw_symbol`` (``ESZ6``), ``continuous``
    (``ES.c.0``), ``parent`` (``ES.FUT``) or ``instrument_id``."""
    heartbeat_interval_s: int = Field(default=30, ge=5, le=3600)
    """Seconds of silence after which the gateway sends a heartbeat record. The
    connection counts as stale after this interval plus 10 s with nothing received."""
    snapshot: bool = True
    """For ``mbo``: ask for the book's snapshot on every (re)connect, so the order book
    starts whole (records flagged F_SNAPSHOT; a clear resets it)."""
    handshake_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long the greeting, challenge and authentication reply may take."""
    check_sequence: bool = False
    """Check that records' ``sequence`` is contiguous (only for a feed that numbers
    one stream per connection, like the simulator's; venue sequences are per channel)."""
    max_record_len: int = Field(default=1024, ge=16, le=65_536)
    """Largest DBN record accepted, in bytes; a longer one is counted as malformed."""
    read_size: int = Field(default=262_144, ge=4_096, le=16 * 1024 * 1024)
    """Socket receive buffer per read (each read is decoded as one buffer)."""

    @field_validator("schemas")
    @classmethod
    def _unique(cls, value: list[Schema]) -> list[Schema]:
        return list(dict.fromkeys(value))
