"""``ConnectPacer``: one sliding window per (venue, host), no lock held while sleeping.

Timing is asserted only as order and as lower bounds (a slot can be late on a loaded
machine, never early), from the pacer's own record of when it let each connection go.
"""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

from hub_plugin_websocket.codec import RateLimits
from hub_plugin_websocket.connection import ConnectPacer
from hub_plugin_websocket.dialects.kraken import KrakenDialect
from hub_plugin_websocket.ratelimit import RateWindow

WINDOW_S = 1.0


class _Tight(KrakenDialect):
    """A venue that takes 2 new connections per second."""

    name = "tight"
    limits = RateLimits(connections=2, connections_interval_s=WINDOW_S)


class _Other(KrakenDialect):
    name = "other"
    limits = RateLimits(connections=2, connections_interval_s=WINDOW_S)


def test_reserve_hands_out_slots_in_order_under_the_limit() -> None:
    w = RateWindow(2, 1.0)
    slots = [w.reserve(10.0) for _ in range(5)]
    assert slots[:2] == [10.0, 10.0]
    # each slot is at least a window after the one two before it
    assert all(slots[i] - slots[i - 2] >= 1.0 for i in range(2, 5))
    assert slots == sorted(slots)


@pytest.mark.anyio
async def test_a_venue_at_its_limit_does_not_delay_another() -> None:
    pacer = ConnectPacer()
    tight, other = _Tight(), _Other()

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(pacer.wait, tight, "h")
        await anyio.lowlevel.checkpoint()  # the five have reserved their slots and sleep
        await pacer.wait(other, "h")  # another venue
        await pacer.wait(tight, "other-host")  # the same venue on another host
        order = [(v, h) for v, h, _ in pacer.granted]
        # both went through before the tight venue's third connection
        assert order[:2] == [("tight", "h"), ("tight", "h")]
        assert ("other", "h") in order and ("tight", "other-host") in order
        assert len(order) == 4
    # the slots as reserved; two sleepers whose slots are microseconds apart may wake in
    # either order, so the order of the grants is not part of the promise
    tight_times = sorted(t for v, h, t in pacer.granted if (v, h) == ("tight", "h"))
    assert time.monotonic() >= tight_times[-1]
    assert len(tight_times) == 5
    # spaced: no three connections of the key within one window
    assert all(tight_times[i] - tight_times[i - 2] >= WINDOW_S for i in range(2, 5))
    keys = [(v, h) for v, h, _ in pacer.granted]
    assert keys.index(("other", "h")) < 4 and keys.index(("tight", "other-host")) < 4
