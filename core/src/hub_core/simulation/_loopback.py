"""Where a simulator may listen (loopback only) and how it shows its address."""

from __future__ import annotations

import socket
import struct
from typing import Final

import anyio.abc

from hub_core.errors import ConfigError

LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")
"""The only addresses a simulator listens on."""


class NotLoopbackError(ConfigError, ValueError):
    """A simulator was asked to listen on an address other than loopback.

    A ``ConfigError`` (its message says what to use instead) and a ``ValueError``, so
    ``hub sim`` reports it as a bad option in one line."""


def require_loopback(host: str) -> str:
    """``host`` if it is a loopback address (``localhost`` becomes ``127.0.0.1``).

    Raises ``NotLoopbackError`` for anything else: a simulator serves whoever connects,
    with made-up data and test credentials, so it never listens beyond this machine.
    """
    if host == "localhost":
        return "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise NotLoopbackError(
            f"the simulator listens on loopback only ({' or '.join(LOOPBACK_HOSTS)}), not {host!r}",
            hint="use --host 127.0.0.1 (or ::1)",
        )
    return host


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reset_on_close(stream: anyio.abc.ByteStream) -> None:
    """Make closing ``stream`` (TCP, or TLS over TCP) send a TCP RST (SO_LINGER 0).

    Simulators use it for ``drop_connections()``: a reset is what a client sees
    when the venue's process dies, not a polite FIN.
    """
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if raw is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


__all__ = ["LOOPBACK_HOSTS", "NotLoopbackError", "host_port", "require_loopback", "reset_on_close"]
