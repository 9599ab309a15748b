"""Venue timestamps to nanoseconds: ``rfc3339_ns`` (Coinbase and Kraken write RFC 3339).

The parser is the kit's compiled ``hub_core.plugin.rfc3339_ns`` (every Coinbase and
Kraken message carries one: interpreted, it was the largest cost of a trade); the name
stays importable from here for the dialects and their users."""

from __future__ import annotations

from hub_core.plugin import rfc3339_ns

__all__ = ["rfc3339_ns"]
