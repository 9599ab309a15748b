"""``receive_counted``: a connection's read of its byte stream, counted as liveness
(interpreted: it awaits anyio, which the compiled modules never import)."""

from __future__ import annotations

import time

import anyio.abc

from hub_core.contracts import ConnectionHealth


async def receive_counted(
    stream: anyio.abc.ByteReceiveStream, health: ConnectionHealth, max_bytes: int = 65_536
) -> bytes:
    """``stream.receive(max_bytes)``, counted in ``health`` before anything parses it:
    ``bytes_received`` grows by every byte and ``last_activity_ns`` is now, whatever
    the bytes hold (half a frame, a heartbeat), so the supervisor never takes a busy
    link for a silent one. Raises what ``receive`` raises (``anyio.EndOfStream`` when
    the venue closed), counting nothing.
    """
    data = await stream.receive(max_bytes)
    health.last_activity_ns = time.monotonic_ns()
    health.bytes_received += len(data)
    return data


__all__ = ["receive_counted"]
