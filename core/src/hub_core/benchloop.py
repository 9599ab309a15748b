"""Compiled driver loops for the benchmarks (``benchmarks/compare.py``).

Measuring a ~100 ns publish from an interpreted ``for`` loop would mostly
measure the loop, so the loops live here, compiled with the rest of the
data plane. ``call_loop`` is the baseline: the bare compiled call of the
same handler that ``publish`` makes.
"""

from collections.abc import Callable
from typing import Any, final

from hub_core.bus import TypedEventBus
from hub_core.ticks import Trade


def publish_loop(bus: TypedEventBus, tick: Trade, n: int) -> None:
    """``bus.publish_trade(tick)`` n times."""
    for _ in range(n):
        bus.publish_trade(tick)


def publish_generic_loop(bus: TypedEventBus, tick: object, n: int) -> None:
    """``bus.publish(tick)`` (type dispatch included) n times."""
    for _ in range(n):
        bus.publish(tick)


def call_loop(handler: Callable[[Any], object], tick: object, n: int) -> None:
    """The baseline: call ``handler(tick)`` n times from compiled code."""
    for _ in range(n):
        handler(tick)


@final
class CountingHandler:
    """A compiled subscriber (what the hub's own sinks and stats look like)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, tick: object) -> None:
        self.count += 1
