"""The plugin's sans-I/O protocol: the contract between the generic WebSocket
connector and a venue's dialect (bytes in, ticks and events out; requests in,
bytes out).

A ``Dialect`` is sans-I/O. It never touches a socket: the connection hands it
each received frame as ``bytes`` and sends the bytes it returns. It knows the
venue's subscribe protocol (messages with request ids), how a frame becomes
ticks (delivered straight to the hub's ``Sink``), its sequencing
rules (local order books, ``Gap`` on a break) and its rate limits.

Per connection, ``Dialect.new_session()`` creates a ``DialectSession`` that
holds the state of one WebSocket session (request ids, books); it is thrown
away with the connection, so books are always rebuilt from a fresh snapshot
after a reconnect. ``feed`` returns the events below (``Ack``, ``Refused``,
``NeedSnapshot``, ``ServerShutdown``, ``Resubscribe``, ``Notice``) for the
connection to act on. See sdk-docs/websocket-dialects.md.

The venue-neutral helpers live beside it: ``urls`` (TLS unless loopback) and
``ratelimit`` (``RateWindow``). This module was ``hub_plugin_websocket.dialect``,
which stays importable as a deprecated alias.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub_core.plugin import Sink

__all__ = [
    "Ack",
    "Dialect",
    "DialectEvent",
    "DialectSession",
    "NeedSnapshot",
    "Notice",
    "RateLimits",
    "Refused",
    "Request",
    "Resubscribe",
    "ServerShutdown",
    "SessionConfig",
    "SessionCounters",
]


@dataclass(frozen=True)
class RateLimits:
    """A venue's published limits; the connector paces itself under them.

    ``connections`` new connections per ``connections_interval_s`` (per
    factory, i.e. per hub), ``messages_per_second`` control messages sent on
    one connection (subscribe, unsubscribe, list, client pings),
    ``streams_per_connection`` subscribed streams on one connection,
    ``streams_per_message`` streams in one subscribe message, and
    ``snapshots_per_second`` REST snapshot requests per connection.
    """

    connections: int = 300
    connections_interval_s: float = 300.0
    messages_per_second: float = 5.0
    streams_per_connection: int = 1024
    streams_per_message: int = 200
    snapshots_per_second: float = 5.0

    def __post_init__(self) -> None:
        if self.connections < 1 or self.connections_interval_s <= 0:
            raise ValueError("connections and connections_interval_s must be positive")
        if self.messages_per_second <= 0 or self.snapshots_per_second <= 0:
            raise ValueError("messages_per_second and snapshots_per_second must be positive")
        if self.streams_per_connection < 1 or self.streams_per_message < 1:
            raise ValueError("streams_per_connection and streams_per_message must be >= 1")


@dataclass(frozen=True)
class SessionConfig:
    """What one session of a dialect is configured with (from the connection's options)."""

    endpoint: str
    """The stream URL as given in the config (``wss://.../ws`` or ``.../stream?streams=``)."""
    channels: tuple[str, ...]
    """The venue's own channel names, validated by ``Dialect.validate_channels``."""
    rest_url: str
    """Base URL of the venue's REST API (book snapshots), no trailing slash."""
    snapshot_limit: int = 1000
    """Levels asked for in a REST book snapshot."""
    max_buffered_events: int = 10_000
    """Depth events buffered per symbol while a snapshot is on its way; past it the
    buffer is dropped, a ``Gap`` published and the sync starts over."""


@dataclass(frozen=True)
class Request:
    """One control message to send, identified by ``id`` for its acknowledgement."""

    id: int
    op: str
    """``"subscribe"``, ``"unsubscribe"`` or ``"list"``."""
    payload: bytes
    """The message, ready to send as one text frame."""
    streams: tuple[str, ...] = ()
    """The venue stream names the message covers (for error messages)."""
    symbols: tuple[str, ...] = ()


# -- what feed() returns besides ticks (which go to the sink directly) -----------------
@dataclass(frozen=True)
class Ack:
    """The venue accepted request ``id``; ``result`` is its reply (``None`` for most)."""

    id: int
    result: object = None


@dataclass(frozen=True)
class Refused:
    """The venue refused request ``id`` (or, with ``id`` None, something unattributed)."""

    id: int | None
    code: int
    message: str


@dataclass(frozen=True)
class NeedSnapshot:
    """The session needs a REST book snapshot of ``symbol``: GET ``url``, then pass the
    body to ``DialectSession.snapshot_received`` (or report ``snapshot_failed``)."""

    symbol: str
    url: str


@dataclass(frozen=True)
class ServerShutdown:
    """The venue announced it will close this connection (maintenance)."""

    reason: str


@dataclass(frozen=True)
class Resubscribe(ServerShutdown):
    """A book must be rebuilt from a fresh snapshot, which the venue only sends on a new
    subscription: send ``requests`` (typically unsubscribe, then subscribe) in order, on
    the same connection, and keep the session.

    It is a ``ServerShutdown`` so that a connector which does not know it ends the
    session: the hub then reconnects and every book is rebuilt from a new snapshot,
    which is correct, only heavier. The replies to ``requests`` are the session's own:
    it completes them itself and returns nothing for them, so the connector registers
    no acknowledgement wait for them.
    """

    requests: tuple[Request, ...] = ()
    delay_s: float = 0.0
    """Send ``requests`` this many seconds from now (a retry after the venue refused a
    resync backs off), 0: at once."""


@dataclass(frozen=True)
class Notice:
    """Something worth logging that is neither data nor a reply."""

    text: str


DialectEvent = Ack | Refused | NeedSnapshot | ServerShutdown | Resubscribe | Notice


@dataclass
class SessionCounters:
    """Frames a session saw, by outcome (for tests, logs and ``health().detail``)."""

    frames: int = 0
    ignored: int = 0
    """Well-formed frames of kinds that carry no tick (klines, tickers not mapped)."""
    by_kind: dict[str, int] = field(default_factory=dict)


class DialectSession(abc.ABC):
    """The state of one WebSocket session with a venue. Sans-I/O, single-threaded.

    The connection calls ``feed`` for every text frame, synchronously on its
    reader; ``feed`` publishes ticks through the sink and returns a
    ``DialectEvent`` when the connection has something to do (complete a
    request, fetch a snapshot, reconnect), else ``None``. ``feed`` never
    raises: an unusable frame is ``sink.malformed(reason)``.
    """

    counters: SessionCounters

    @abc.abstractmethod
    def subscribe(self, symbols: Sequence[str]) -> list[Request]:
        """Messages that subscribe every configured channel of ``symbols``.

        Symbols were validated by ``Dialect.validate_symbol``. Streams already
        subscribed are left out; an empty list means nothing to send.
        """

    @abc.abstractmethod
    def unsubscribe(self, symbols: Sequence[str]) -> list[Request]:
        """Messages that unsubscribe ``symbols``; their books are forgotten at once."""

    def list_subscriptions(self) -> Request | None:
        """A message asking the venue which streams are subscribed (``None``: no such thing)."""
        return None

    @abc.abstractmethod
    def feed(self, frame: bytes, ts_recv: int) -> DialectEvent | None:
        """Handle one received text frame (``ts_recv``: wall-clock ns of its read)."""

    def frame_handler(self) -> Callable[[bytes, int], DialectEvent | None]:
        """The callable the connection calls per frame: ``feed`` itself by default; a
        dialect may return an equivalent closure that avoids attribute lookups."""
        return self.feed

    def snapshot_received(self, symbol: str, body: bytes, ts_recv: int) -> DialectEvent | None:
        """A REST snapshot asked for by ``NeedSnapshot`` arrived. May ask for another."""
        return None

    def snapshot_failed(self, symbol: str, reason: str) -> None:  # noqa: B027 - optional hook
        """The snapshot request failed; the next depth event asks again."""

    def rebind(self, sink: Sink) -> None:
        """Deliver to ``sink`` from now on (optional; the connector refetches
        ``frame_handler()`` afterwards).

        The connector's gap-free session rotation needs it: while a session is
        replaced, both sessions deliver to private sinks and the connector switches
        streams from the old to the new one. A dialect that does not override this
        still works: its sessions are then replaced by an ordinary reconnect, which
        publishes a ``Gap`` and rebuilds every book.
        """
        raise NotImplementedError

    def ping_payload(self) -> bytes | None:
        """An application-level heartbeat message, for venues that want one instead of
        WebSocket pings (``None``: the connector sends a WebSocket ping)."""
        return None

    @property
    def streams(self) -> frozenset[str]:
        """Venue stream names currently subscribed (acknowledged or in flight)."""
        return frozenset()


class Dialect(abc.ABC):
    """A venue: its name, limits, channels and the sessions that speak its protocol.

    One instance serves every connection of that dialect; it must hold no
    per-connection state (that belongs in the ``DialectSession``).
    """

    name: str = ""
    """The ``options.dialect`` value that selects this dialect (lower case)."""
    description: str = ""
    limits: RateLimits = RateLimits()
    channels: tuple[str, ...] = ()
    """Channel names ``options.channels`` may use."""
    default_channels: tuple[str, ...] = ()
    """Channels used when ``options.channels`` is not given."""

    def validate_channels(self, channels: Sequence[str]) -> tuple[str, ...]:
        """The channels, checked; raises ``ValueError`` naming an unknown one."""
        out: list[str] = []
        for ch in channels:
            if ch not in self.channels:
                known = ", ".join(self.channels)
                raise ValueError(f"unknown {self.name} channel {ch!r} (known: {known})")
            if ch not in out:
                out.append(ch)
        if not out:
            raise ValueError("channels must name at least one channel")
        return tuple(out)

    def validate_symbol(self, symbol: str) -> str:
        """The symbol as the venue spells it; raises ``ValueError`` if it cannot be one."""
        if not symbol or not symbol.isprintable() or " " in symbol:
            raise ValueError(f"{symbol!r} is not a {self.name} symbol")
        return symbol

    def validate_endpoint(self, endpoint: str) -> None:  # noqa: B027 - optional hook
        """Raise ``ValueError`` if ``endpoint`` is not a stream URL of this venue's shape."""

    def default_rest_url(self, endpoint: str) -> str:
        """The REST base URL that belongs to the stream ``endpoint``."""
        return ""

    @abc.abstractmethod
    def new_session(self, sink: Sink, config: SessionConfig) -> DialectSession:
        """A fresh session for one connection, delivering to ``sink``."""
