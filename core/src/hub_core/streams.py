"""``EventStream``: the async side of ``TypedEventBus.stream()`` (interpreted).

The bus pushes into a compiled ``StreamBuffer`` on the publisher's task; this
wrapper awaits on the consumer's task. Same thread, same event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Generic, Protocol, cast

import anyio

from hub_core.bus import E, StreamBuffer, Subscription, TypedEventBus


class EventStream(Generic[E]):
    """Async iterator over one tick type. ``async for tick in stream: ...``.

    Generic in what it yields: ``bus.stream(Trade)`` is an ``EventStream[Trade]``.

    Ends (``StopAsyncIteration``) after ``close()``. ``dropped`` and
    ``conflated`` count what the overflow policy discarded or merged.
    """

    def __init__(self, bus: TypedEventBus, buffer: StreamBuffer, sub: Subscription) -> None:
        self._bus = bus
        self._buf = buffer
        self._sub = sub

    @property
    def dropped(self) -> int:
        return self._buf.dropped

    @property
    def conflated(self) -> int:
        return self._buf.conflated

    @property
    def delivered(self) -> int:
        return self._buf.delivered

    @property
    def maxsize(self) -> int:
        return self._buf.maxsize

    def __len__(self) -> int:
        return len(self._buf)

    def __aiter__(self) -> EventStream[E]:
        return self

    async def __anext__(self) -> E:
        buf = self._buf
        while True:
            tick = buf.pop()
            if tick is not None:
                return cast(E, tick)
            if buf.closed:
                raise StopAsyncIteration
            event = anyio.Event()
            buf.wake = event.set
            await event.wait()

    def get_nowait(self) -> E | None:
        """The next tick if one is buffered, else None."""
        return cast("E | None", self._buf.pop())

    def close(self) -> None:
        """Stop receiving; a pending ``__anext__`` ends the iteration."""
        self._sub.unsubscribe()
        self._buf.close()
        self._bus._forget_stream(self._buf)

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> EventStream[E]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> EventStream[E]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _HasCapacity(Protocol):
    @property
    def backpressured(self) -> bool: ...

    def add_capacity_waiter(self, wake: Callable[[], object]) -> None: ...


async def wait_for_capacity(target: _HasCapacity) -> None:
    """Return once no ``"block"`` stream is over its ``maxsize``.

    ``target`` is the bus or a connection's sink; readers call this after a
    buffer when ``sink.backpressured`` is true.
    """
    while target.backpressured:
        event = anyio.Event()
        target.add_capacity_waiter(event.set)
        await event.wait()
