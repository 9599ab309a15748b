"""The URL rules of the generic connector: TLS to a venue, plain text to loopback only.

``check_stream_url`` and ``check_rest_url`` vet the configured stream and REST
URLs (``wss://`` / ``https://``, or ``ws://`` / ``http://`` to a loopback host,
where nothing leaves the machine); ``is_loopback_host`` is the test they share.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK_HOSTS",
    "check_rest_url",
    "check_stream_url",
    "is_loopback_host",
]

LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it could resolve anywhere
        return False


def check_stream_url(url: str) -> str:
    """The host of a stream URL; ``ValueError`` unless it is ``wss://`` (or ``ws://`` to
    a loopback host, where nothing leaves the machine)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("ws", "wss") or not host:
        raise ValueError(f"{url!r} is not a WebSocket URL (its scheme must be wss or ws)")
    if parts.scheme == "ws" and not is_loopback_host(host):
        raise ValueError(
            f"{url!r}: plain ws:// is only allowed to a loopback host; use wss:// "
            "(TLS, verified) for a venue"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number 1..65535") from None
    return host


def check_rest_url(url: str) -> str:
    """The host of a REST base URL; ``ValueError`` unless ``https://`` (or loopback http)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(f"{url!r}: plain http:// is only allowed to a loopback host")
    return host
