"""``ConnectionDetails``: one connection's state, for applications and dashboards.

``hub.connection_status()`` stays ``{ExchangeId: healthy}``;
``hub.connection_details()`` gives this fuller view, a snapshot taken when it
is called (nothing in it changes afterwards).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hub_core.redact import redact_text

if TYPE_CHECKING:
    from hub_core.processor import ExchangeStats
    from hub_core.supervisor import ConnectionSupervisor


@dataclass(frozen=True)
class ConnectionDetails:
    """What a connection is doing, as of the call (every endpoint shown redacted)."""

    exchange: str
    """The connection's name (the TOML table name)."""
    protocol: str
    state: str
    """``connecting``, ``connected``, ``stale``, ``reconnecting``, ``auth_failed``, ``dead``
    or ``closed``."""
    healthy: bool
    reason: str
    """Why it is in that state (the last ``ConnectionStateChanged`` reason)."""
    endpoint: str
    """The endpoint in use, secrets masked."""
    attempt: int
    """The reconnect attempt under way (0 while connected)."""
    symbols: dict[str, str] = field(default_factory=dict)
    """Each wanted symbol's state: ``subscribed``, ``quiet``, ``pending``,
    ``refused: <reason>`` or ``error: <reason>``."""
    last_message_ns: int = 0
    """Wall-clock ns of the last market data received (0: none yet)."""
    latency_ns: dict[str, int] = field(default_factory=dict)
    """Receive-to-callback percentiles of this connection (``{"p50": ns, ...}``)."""
    trades: int = 0
    quotes: int = 0
    book_updates: int = 0
    snapshots: int = 0
    book_clears: int = 0
    gaps: int = 0
    malformed: int = 0
    reconnects: int = 0
    venue_errors: int = 0
    bytes_received: int = 0
    detail: str = ""
    """The connection's own word on its health (``ConnectionHealth.detail``): why a
    connected session is not healthy, say."""

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)


def details_of(sup: ConnectionSupervisor, stats: ExchangeStats | None) -> ConnectionDetails:
    """A snapshot of one supervised connection and its counters."""
    counters: dict[str, Any] = {}
    if stats is not None:
        counters = {
            "last_message_ns": stats.last_recv_ns,
            "latency_ns": dict(stats.latency_ns),
            "trades": stats.trades,
            "quotes": stats.quotes,
            "book_updates": stats.book_updates,
            "snapshots": stats.snapshots,
            "book_clears": stats.book_clears,
            "gaps": stats.gaps,
            "malformed": stats.malformed,
            "reconnects": stats.reconnects,
            "venue_errors": stats.venue_errors,
        }
    return ConnectionDetails(
        exchange=sup.name,
        protocol=sup.config.protocol,
        state=sup.state,
        healthy=sup.healthy,
        reason=sup.reason,
        endpoint=sup.shown_endpoint,
        attempt=sup.attempt,
        symbols=sup.symbol_states(),
        bytes_received=sup.bytes_received,
        detail=redact_text(sup.detail),
        **counters,
    )
