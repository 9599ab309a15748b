"""Shared plumbing for plugin simulators (interpreted; plugins may subclass it).

Every plugin ships a loopback server of its protocol. ``BackgroundServer``
gives each one the same lifecycle: ``async with sim:`` starts ``serve()`` in a
task group and returns once it listens; leaving the block stops it.
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import Callable
from typing import Self

import anyio
import anyio.abc

# A simulator speaks its venue's wire: DBN records, built from the core's encoders.
from hub_core.dbn import (
    UNDEF_PRICE,
    UNDEF_TIMESTAMP,
    encode_book_update,
    encode_error,
    encode_heartbeat,
    encode_mbp1_raw,
    encode_symbol_mapping,
    encode_system,
    encode_trade_raw,
)
from hub_core.fixed import PRICE_SCALE
from hub_core.ticks import BookSnapshot, BookUpdate, Quote, Side, Trade

LOOPBACK_HOSTS = ("127.0.0.1", "::1")


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BackgroundServer:
    """Mixin for a server with ``serve(ready=None, *, task_status=...)``.

    ``serve`` must call ``task_status.started()`` once it listens (and
    ``ready(host, port)`` if given) and run until cancelled.
    """

    _tg_cm: anyio.abc.TaskGroup | None = None

    async def serve(
        self,
        ready: Callable[[str, int], None] | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        tg_cm = anyio.create_task_group()
        tg = await tg_cm.__aenter__()
        self._tg_cm = tg_cm
        try:
            await tg.start(self.serve)
        except BaseException:
            self._tg_cm = None
            tg.cancel_scope.cancel()
            await tg_cm.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        tg_cm, self._tg_cm = self._tg_cm, None
        if tg_cm is not None:
            tg_cm.cancel_scope.cancel()
            await tg_cm.__aexit__(None, None, None)


class StallSwitch:
    """Mixin for the stall fault (the conformance suite's ``stall()``/``resume()``):
    senders ``await self.wait_while_stalled()`` before each write."""

    _stall_event: anyio.Event | None = None

    def stall(self) -> None:
        """Send nothing until ``resume()``; sockets stay open (senders call
        ``wait_while_stalled()`` before each write)."""
        if self._stall_event is None:
            self._stall_event = anyio.Event()

    def resume(self) -> None:
        """End a stall."""
        event, self._stall_event = self._stall_event, None
        if event is not None:
            event.set()

    @property
    def stalled(self) -> bool:
        """Whether ``stall()`` is in force."""
        return self._stall_event is not None

    async def wait_while_stalled(self) -> None:
        """Return at once, or when the current stall ends."""
        while (event := self._stall_event) is not None:
            await event.wait()


def reset_on_close(stream: anyio.abc.ByteStream) -> None:
    """Make closing ``stream`` (TCP, or TLS over TCP) send a TCP RST (SO_LINGER 0).

    Simulators use it for ``drop_connections()``: a reset is what a client sees
    when the venue's process dies, not a polite FIN.
    """
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if raw is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


OptionParser = Callable[[str], object]
"""Turns the text of ``hub sim -o KEY=VALUE`` into the simulator keyword's value."""


def parse_bool(text: str) -> bool:
    """``true``/``false``/``1``/``0``/``yes``/``no`` (any case) as a bool."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def parse_users(text: str) -> dict[str, str]:
    """``USER:PASSWORD[,USER:PASSWORD...]`` as a mapping (the simulator's accounts)."""
    users: dict[str, str] = {}
    for item in text.split(","):
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise ValueError(item)
        users[user] = password
    return users


def simulator_options(
    simulator: str,
    given: dict[str, object],
    parsers: dict[str, tuple[OptionParser, str] | None],
) -> dict[str, object]:
    """``hub sim -o`` options for ``simulator``, text converted by each key's parser.

    ``parsers`` maps every keyword the simulator takes to ``(parse, what it expects)``,
    or to None for a keyword only Python can pass (an SSL context). An unknown key, a
    value its parser refuses or a number that is not finite is a ``ValueError``
    naming the option, which ``hub sim`` prints as a one-line error (exit 2). Values
    that are not text (from Python) pass as they are.
    """
    out: dict[str, object] = {}
    for key, raw in given.items():
        if key not in parsers:
            takes = ", ".join(sorted(parsers)) or "no options"
            raise ValueError(f"the {simulator} simulator has no option {key!r} (it takes {takes})")
        value = raw
        if isinstance(raw, str):
            parser = parsers[key]
            if parser is None:
                raise ValueError(f"option {key!r} cannot be given as text")
            parse, what = parser
            try:
                value = parse(raw)
            except ValueError:
                raise ValueError(f"option {key}={raw!r}: expected {what}") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"option {key}={raw!r}: expected a finite number")
        out[key] = value
    return out


__all__ = [
    "LOOPBACK_HOSTS",
    "PRICE_SCALE",
    "UNDEF_PRICE",
    "UNDEF_TIMESTAMP",
    "BackgroundServer",
    "BookSnapshot",
    "BookUpdate",
    "OptionParser",
    "Quote",
    "Side",
    "StallSwitch",
    "Trade",
    "encode_book_update",
    "encode_error",
    "encode_heartbeat",
    "encode_mbp1_raw",
    "encode_symbol_mapping",
    "encode_system",
    "encode_trade_raw",
    "host_port",
    "parse_bool",
    "parse_users",
    "reset_on_close",
    "simulator_options",
]
