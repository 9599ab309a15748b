"""Exceptions raised by the hub and its plugins.

Every error carries enough to act on: which exchange, which endpoint, and what
to do. They are ordinary exceptions, so they work with anyio task groups
(``ExceptionGroup``) and ``except*``.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        exchange: str = "",
        endpoint: str = "",
        hint: str = "",
    ) -> None:
        self.exchange = exchange
        self.endpoint = endpoint
        self.hint = hint
        parts = []
        if exchange:
            parts.append(f"[{exchange}]")
        parts.append(message)
        if endpoint:
            parts.append(f"(endpoint {endpoint})")
        text = " ".join(parts)
        if hint:
            text += f": {hint}"
        super().__init__(text)


class ConfigError(HubError):
    """The configuration is invalid; the message names the TOML key."""


class PluginError(HubError):
    """A plugin could not be loaded or registered."""


class ConnectionFailed(HubError):
    """A transport-level failure; the supervisor retries these with backoff."""


class AuthenticationError(HubError):
    """The venue refused our credentials. Never retried automatically."""


class SubscriptionError(HubError):
    """The venue refused a subscription (unknown symbol, no entitlement)."""


class ProtocolError(HubError):
    """The peer broke the wire protocol (bad handshake, impossible frame)."""


class ConnectionDead(HubError):
    """A connection gave up: retries exhausted, or a feed that stays silent."""


class DecodeError(ValueError):
    """Bytes or text could not be decoded. Raised by codecs; counted, never fatal."""


class MalformedNumber(DecodeError):
    """Decimal text that is not a number or cannot be held exactly at 1e-9."""


class FrameTooLarge(DecodeError):
    """A frame or message is larger than the reader's bound."""
