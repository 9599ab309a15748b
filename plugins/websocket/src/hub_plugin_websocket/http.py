"""REST book snapshots: one async HTTP GET at a time, bounded in size and time (httpx)."""

from __future__ import annotations

import ssl
from typing import Final

import httpx

__all__ = ["MAX_SNAPSHOT_BYTES", "SnapshotClient", "SnapshotError"]

MAX_SNAPSHOT_BYTES: Final = 16 << 20
"""A 5000-level Binance snapshot is about 400 kB; anything past this is refused."""


class SnapshotError(Exception):
    """A snapshot request failed; ``retry_after_s`` is the venue's requested pause, if any."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after_s: float = 0.0):
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(reason)


class SnapshotClient:
    """An ``httpx.AsyncClient`` for one connection's snapshot requests."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        timeout_s: float,
        *,
        trust_env: bool = True,
        user_agent: str = "hub-plugin-websocket/0.1.0",
    ) -> None:
        self._client = httpx.AsyncClient(
            verify=ssl_context if ssl_context is not None else True,
            timeout=timeout_s,
            trust_env=trust_env,
            follow_redirects=False,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    async def get(self, url: str) -> bytes:
        """The body of a 200 answer to GET ``url``; ``SnapshotError`` otherwise."""
        try:
            async with self._client.stream("GET", url) as response:
                status = response.status_code
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_SNAPSHOT_BYTES:
                        raise SnapshotError(
                            f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes", status=status
                        )
                if status != 200:
                    retry = _retry_after(response.headers.get("Retry-After"))
                    text = bytes(body[:200]).decode("utf-8", "replace")
                    raise SnapshotError(
                        f"HTTP {status} from {url}: {text}", status=status, retry_after_s=retry
                    )
                return bytes(body)
        except httpx.HTTPError as exc:
            raise SnapshotError(f"GET {url} failed: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        return 0.0
