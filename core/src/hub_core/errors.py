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
        # Only the redacted endpoint is kept: an error travels into logs, events and the
        # CLI's last line, and a URL may carry a password or a token.
        from hub_core.redact import redact_endpoint, redact_text

        endpoint = redact_endpoint(endpoint) if endpoint else ""
        self.exchange = exchange
        self.endpoint = endpoint
        self.hint = redact_text(hint)
        bare = redact_text(message)
        if exchange:
            # a message that quotes another error of this exchange (str(exc)) would
            # otherwise read "[acme] ... [acme] ...": the exchange is named once, in front
            bare = bare.replace(f"[{exchange}] ", "")
        if endpoint:
            bare = bare.replace(f" (endpoint {endpoint})", "")
        self.message = bare
        """What happened, without the exchange, the endpoint and the hint."""
        self.reason = f"{bare}: {self.hint}" if self.hint else bare
        """What happened and what to do, without the exchange and endpoint (the state
        events and the live view show those beside it)."""
        parts = []
        if exchange:
            parts.append(f"[{exchange}]")
        parts.append(bare)
        if endpoint:
            parts.append(f"(endpoint {endpoint})")
        text = " ".join(parts)
        if hint:
            text += f": {redact_text(hint)}"
        super().__init__(text)


class ConfigError(HubError):
    """The configuration is invalid; the message names the TOML key."""


class PluginError(HubError):
    """A plugin could not be loaded or registered."""


class ConnectionFailed(HubError):
    """A transport-level failure; the supervisor retries these with backoff."""


class AuthenticationError(HubError):
    """The venue refused us: wrong credentials, HTTP 401/403 on a WebSocket upgrade,
    a logon the venue rejects. Never retried: one attempt, then ``auth_failed``."""


class RateLimited(ConnectionFailed):
    """The venue told us to slow down (HTTP 429/418, a pacing reject).

    The supervisor waits ``retry_after_s`` (the venue's ``Retry-After``; at
    least its own backoff) before the next attempt, and never counts it as a
    refusal or a network fault.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float = 0.0,
        exchange: str = "",
        endpoint: str = "",
        hint: str = "",
    ) -> None:
        self.retry_after_s = max(0.0, float(retry_after_s))
        super().__init__(message, exchange=exchange, endpoint=endpoint, hint=hint)


class SequenceMismatch(HubError):
    """The venue and the hub disagree on session sequence numbers (one side reset).

    Retrying cannot fix it, so the connection stops (``dead``) with a message
    that names both numbers and what to change (for FIX: ``reset_on_logon`` or
    the sequence store).
    """


class SubscriptionError(HubError):
    """The venue refused a subscription (unknown symbol, no entitlement).

    ``refused`` maps each refused symbol to the venue's reason, so the hub can
    keep the accepted ones and show the refused ones per symbol. A plugin that
    cannot tell which symbols were refused leaves it empty.
    """

    def __init__(
        self,
        message: str,
        *,
        refused: dict[str, str] | None = None,
        exchange: str = "",
        endpoint: str = "",
        hint: str = "",
    ) -> None:
        self.refused: dict[str, str] = dict(refused or {})
        super().__init__(message, exchange=exchange, endpoint=endpoint, hint=hint)


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
