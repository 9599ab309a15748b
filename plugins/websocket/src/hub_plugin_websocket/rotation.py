"""Replacing a WebSocket session without a gap or a duplicate (make before break).

Binance cuts every connection at 24 hours and announces maintenance with
``serverShutdown``. The connection then opens a replacement session,
subscribes the same symbols on it, and switches each stream over once both
sessions have delivered the same tick, before closing the old session.

While the two overlap, both dialect sessions deliver to private sinks
(``RotationGate.old_sink`` / ``new_sink``) instead of the hub's, and the gate
decides what reaches the hub:

- trades and quotes, per symbol: the old session's ticks are published and
  kept in order; the new session's are held until they are proven to
  continue the old stream: found at exactly one place in it, in the same
  order (same price, size, side, venue time and id; the time of receipt
  differs). A tick with a venue id (``sequence``) is proof alone; a stream
  without ids needs ``ALIGN_RUN`` consecutive ticks (one equal quote proves
  nothing: markets repeat values, and a subscribe-time snapshot equals the
  last quote). From then on the old session's ticks of that stream are
  dropped, and the new session's are compared by position with what the old
  one published (matches are duplicates, dropped; past the end, published).
  A tick whose id is at or below the highest published is never published;
- books: the new session rebuilds its book from its own snapshot; when its
  ``BookSnapshot`` comes, it is published (a snapshot replaces the book
  whole) and the old session's book updates of that symbol stop.

When every stream has switched and the new session has delivered the last
tick the old one published, the new session is bound to the hub's sink (no
gate stays on the hot path) and the old one is closed. A stream that cannot
be proven continuous within ``rotation_overlap_s`` (not aligned, silent on
the new session, a late snapshot) gets a ``Gap`` naming the rotation:
nothing is papered over and nothing switches silently.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from hub_core.plugin import BookSnapshot, BookUpdate, Gap, Quote, Sink, Trade, divert_sink
from hub_plugin_websocket.codec import DialectSession

__all__ = ["ALIGN_RUN", "RotationGate", "supports_rotation"]

log = logging.getLogger("hub_plugin_websocket")

_TradeKey = tuple[int, int, str, int, int]
_QuoteKey = tuple[int, int, int, int, int]


def supports_rotation(session: DialectSession) -> bool:
    """True if the session can change sinks (``DialectSession.rebind``)."""
    return type(session).rebind is not DialectSession.rebind


def _trade_key(t: Trade) -> _TradeKey:
    return (t.price, t.size, t.side, t.ts_event, t.sequence)


def _quote_key(q: Quote) -> _QuoteKey:
    # not ts_event: Binance spot bookTicker has no venue time (ts_event = ts_recv)
    return (q.bid_price, q.bid_size, q.ask_price, q.ask_size, q.sequence)


ALIGN_RUN: Final = 3
"""Consecutive equal ticks that align a stream without venue ids (Kraken's ticker): one
equal quote proves nothing (the market can repeat a value), a run of them in the same
order, found at one place only in the old session's stream, does."""


class _Stream:
    """One stream being switched: trades, quotes or the book of one symbol."""

    __slots__ = (
        "buffered",
        "caught_up",
        "forgotten",
        "gapped",
        "old",
        "old_seq",
        "opos",
        "pos",
        "switched",
        "waiting",
        "where",
    )

    def __init__(self) -> None:
        self.old: list[object] = []
        """The keys of what was published since the rotation began, in order: the old
        session's ticks, then (once switched) whichever session delivered each first."""
        self.where: dict[object, list[int]] = {}
        """key -> its positions in ``old``"""
        self.old_seq = 0
        """The highest venue id (``sequence``) published on the stream."""
        self.buffered: list[tuple[object, Trade | Quote]] = []
        """The new session's ticks, held until the stream switches."""
        self.pos = 0
        """Once switched: the place in ``old`` the new session's next tick must match."""
        self.opos = 0
        """Once switched: the place in ``old`` the old session's next tick must match."""
        self.switched = False
        self.caught_up = False
        self.gapped = False
        self.forgotten = False
        """Unsubscribed during the rotation: whatever either session still sends is
        dropped."""
        self.waiting = False
        """The old session delivered on this stream after the new one subscribed."""

    def behind(self) -> bool:
        """The new session has not delivered everything published on the stream."""
        return self.pos < len(self.old)

    def record(self, key: object, sequence: int) -> None:
        """``key`` was published: the next place in the stream."""
        self.where.setdefault(key, []).append(len(self.old))
        self.old.append(key)
        self.old_seq = max(self.old_seq, sequence)


class RotationGate:
    """Two sessions' ticks in, one gap-free, duplicate-free stream out (see the module)."""

    def __init__(self, real: Sink) -> None:
        self._real = real
        exchange = real.exchange
        self.old_sink = divert_sink(
            exchange,
            self._old_trade,
            self._old_quote,
            self._old_book,
            self._old_book,
            self._old_gap,
        )
        """What the session being replaced delivers to during the rotation."""
        self.new_sink = divert_sink(
            exchange,
            self._new_trade,
            self._new_quote,
            self._new_book_update,
            self._new_snapshot,
            self._new_gap,
        )
        """What the replacement delivers to until it is switched in."""
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._overlap_since = 0.0
        self._abandoned = False
        self._finished = False
        self._started_ns = time.time_ns()
        self.released = 0
        self.dropped_old = 0
        self.duplicates = 0
        self.gaps = 0

    def _stream(self, kind: str, symbol: str) -> _Stream:
        key = (kind, symbol)
        st = self._streams.get(key)
        if st is None:
            st = self._streams[key] = _Stream()
        return st

    # -- the old session ----------------------------------------------------------------------
    def _old_tick(self, kind: str, tick: Trade | Quote, key: object) -> _Stream | None:
        """Record one of the old session's trades/quotes; None: drop it (switched)."""
        st = self._stream(kind, tick.symbol)
        if st.forgotten and not self._abandoned:
            self.dropped_old += 1
            return None
        if self._abandoned or not st.switched:
            if self._finished and not self._abandoned:
                self.dropped_old += 1
                return None
            st.record(key, tick.sequence)
            st.opos = len(st.old)
            st.waiting = True
            return st
        if self._finished:
            self.dropped_old += 1
            return None
        # switched: both sessions feed one stream, each tick published by whichever
        # delivers it first; the old one may still be ahead of the new one
        if st.opos < len(st.old):
            if key == st.old[st.opos]:
                st.opos += 1  # the new session published it already
            elif key not in st.where:
                # the old session has a tick the new one's stream went past: lost there
                self._gap(kind, tick.symbol, st, "skipped a tick the old session had")
            self.dropped_old += 1
            return None
        if tick.sequence and tick.sequence <= st.old_seq:
            self.dropped_old += 1
            return None
        st.record(key, tick.sequence)
        st.opos = len(st.old)
        return st

    def _old_trade(self, t: Trade) -> None:
        st = self._old_tick("T", t, _trade_key(t))
        if st is not None:
            self._real.publish(t)
            if st.buffered:  # after publishing it: the new session's ticks come next
                self._try_switch("T", t.symbol, st)

    def _old_quote(self, q: Quote) -> None:
        st = self._old_tick("Q", q, _quote_key(q))
        if st is not None:
            self._real.publish(q)
            if st.buffered:
                self._try_switch("Q", q.symbol, st)

    def _old_book(self, tick: BookUpdate | BookSnapshot) -> None:
        st = self._stream("B", tick.symbol)
        if (st.switched or self._finished) and not self._abandoned:
            self.dropped_old += 1
            return
        st.waiting = True
        if isinstance(tick, BookSnapshot):
            self._real.publish(tick)
        else:
            self._real.publish(tick)

    def _old_gap(self, g: Gap) -> None:
        self._forward_gap(g)

    # -- the new session ----------------------------------------------------------------------
    def _new_tick(self, kind: str, tick: Trade | Quote, key: object) -> None:
        if self._abandoned:
            return
        st = self._stream(kind, tick.symbol)
        if st.forgotten:
            return
        if not st.switched:
            if self._finished:  # a stream first seen after the switch: nothing to align
                st.switched = st.caught_up = True
                st.pos = st.opos = len(st.old)
            else:
                st.buffered.append((key, tick))
                self._try_switch(kind, tick.symbol, st)
                return
        self._after_switch(kind, st, key, tick)

    def _new_trade(self, t: Trade) -> None:
        self._new_tick("T", t, _trade_key(t))

    def _new_quote(self, q: Quote) -> None:
        self._new_tick("Q", q, _quote_key(q))

    def _new_snapshot(self, s: BookSnapshot) -> None:
        if self._abandoned:
            return
        st = self._stream("B", s.symbol)
        # a snapshot replaces the book whole: the old session's updates stop here
        st.switched = True
        st.caught_up = True
        self._real.publish(s)
        self.released += 1

    def _new_book_update(self, u: BookUpdate) -> None:
        if self._abandoned:
            return
        st = self._stream("B", u.symbol)
        if st.switched:
            self._real.publish(u)
            self.released += 1
        # else: impossible by construction (a session publishes its snapshot first)

    def _new_gap(self, g: Gap) -> None:
        # the new session's books and streams are not the subscribers' until switched
        symbol = g.symbol
        if not self._abandoned and (
            symbol == "" or any(st.switched for (_, s), st in self._streams.items() if s == symbol)
        ):
            self._forward_gap(g)

    # -- switching ----------------------------------------------------------------------------
    def _publish(self, tick: object) -> None:
        if isinstance(tick, Trade | Quote):
            self._real.publish(tick)
        self.released += 1

    def _try_switch(self, kind: str, symbol: str, st: _Stream) -> None:
        """Switch ``st`` if the new session's held ticks are proven to continue the old
        session's: the first one found at exactly one place in the old stream, followed
        there by the next ones in the same order (one tick with a venue id is proof
        enough; ``ALIGN_RUN`` of them without)."""
        first_key, first_tick = st.buffered[0]
        places = st.where.get(first_key)
        if not places:
            return  # the old session has not delivered it (yet): the usual case, cheap
        keys = [k for k, _ in st.buffered]
        need = 1 if first_tick.sequence else ALIGN_RUN
        old = st.old
        found: list[int] = []
        for i in places:
            m = min(len(old) - i, len(keys))
            if old[i : i + m] == keys[:m]:
                found.append(i)
        if len(found) != 1:
            return  # not delivered by the old session yet, or ambiguous: wait for more
        i = found[0]
        if min(len(old) - i, len(keys)) < need:
            return  # a run too short to prove anything yet
        st.switched = st.caught_up = True
        st.pos = i
        st.opos = len(old)
        held, st.buffered = st.buffered, []
        for key, tick in held:
            self._after_switch(kind, st, key, tick)

    def _after_switch(self, kind: str, st: _Stream, key: object, tick: Trade | Quote) -> None:
        """One of the new session's ticks on a switched stream: a duplicate of one
        published already (dropped), or the next one (published)."""
        old = st.old
        if st.pos < len(old):
            if key == old[st.pos]:
                st.pos += 1
                self.duplicates += 1
                return
            if key in st.where or (tick.sequence and tick.sequence <= st.old_seq):
                # published already, or older than what was: never again, never late
                self.duplicates += 1
                if key not in st.where:
                    self._gap(kind, tick.symbol, st, "departed from the old session's")
                return
            # the new session's stream departs from the old one's: what it skipped or
            # reordered cannot be known, so say so and go on with the new session
            self._gap(kind, tick.symbol, st, "departed from the old session's")
            st.pos = len(old)
        elif tick.sequence and tick.sequence <= st.old_seq:
            self.duplicates += 1
            return
        st.record(key, tick.sequence)
        st.pos = len(old)
        self._publish(tick)

    def forget(self, symbols: set[str]) -> None:
        """``symbols`` were unsubscribed: their streams no longer hold the switch."""
        for (_, symbol), st in self._streams.items():
            if symbol in symbols:
                st.buffered.clear()
                st.switched = st.caught_up = st.forgotten = True
                st.pos = st.opos = len(st.old)

    def start_overlap(self) -> None:
        """The new session's subscriptions are acknowledged: both now carry every stream."""
        self._overlap_since = time.monotonic()

    def settled(self, min_overlap_s: float) -> bool:
        """Both sessions have run together for ``min_overlap_s`` (so that what the old one
        had in flight from before the new one subscribed has arrived), and every stream
        the old one delivered on since the rotation began has switched and caught up."""
        since = self._overlap_since
        if not since or time.monotonic() - since < min_overlap_s:
            return False
        for st in self._streams.values():
            if st.switched:
                if not st.caught_up or st.behind():
                    return False
            elif st.waiting or st.buffered:
                return False
        return True

    def finish(self) -> None:
        """Switch whatever has not switched, with a ``Gap`` where it could not be proven
        continuous (no alignment, a silent new session, a late book snapshot).

        From here on the old session's ticks are all dropped. The new session's go on
        through the gate (duplicates of what the old one published are still dropped)
        until the caller binds it to the hub's sink: at once if ``caught_up()``, else
        after a bounded wait and ``stop_filtering()``."""
        self._finished = True
        for (kind, symbol), st in self._streams.items():
            if st.switched:
                continue
            if kind == "B":
                if st.waiting:
                    self._gap(kind, symbol, st, "snapshot did not come in time")
                st.switched = st.caught_up = True
                continue
            held, st.buffered = st.buffered, []
            if held or st.waiting:
                what = "could not be aligned" if held else "never came on the new session"
                self._gap(kind, symbol, st, what)
            st.switched = True
            st.pos = len(st.old)
            st.caught_up = True
            for key, tick in held:
                # only what is provably past the old session's (venue ids); without ids
                # a held tick may repeat one published already: the Gap covers it
                if tick.sequence:
                    self._after_switch(kind, st, key, tick)
        self.merge_counts()

    def merge_counts(self) -> None:
        """Add what the private sinks counted (malformed frames, venue errors) to the
        hub's sink; idempotent until they count more."""
        for aux in (self.old_sink, self.new_sink):
            self._real.take_counts(aux)

    def caught_up(self) -> bool:
        """Every stream's new session has delivered all the old one published."""
        return all(st.caught_up and not st.behind() for st in self._streams.values())

    def stop_filtering(self) -> None:
        """The new session did not catch up in time: a ``Gap`` for each stream still
        behind (what it delivers from now on is published as it comes)."""
        for (kind, symbol), st in self._streams.items():
            if not st.caught_up or st.behind():
                self._gap(kind, symbol, st, "had not caught up with the old session's")
                st.pos = len(st.old)
                st.caught_up = True

    def _gap(self, kind: str, symbol: str, st: _Stream, what: str) -> None:
        if st.gapped:
            return
        st.gapped = True
        self.gaps += 1
        name = {"T": "trades", "Q": "quotes", "B": "book"}[kind]
        self._real.gap(
            symbol,
            self._started_ns,
            time.time_ns(),
            f"session rotation: the new session's {name} of {symbol} {what}; "
            "not proven continuous across the switch",
        )

    def abandon(self) -> None:
        """The replacement failed: the old session's ticks pass through until it ends."""
        self._abandoned = True

    def _forward_gap(self, g: Gap) -> None:
        self._real.gap(g.symbol, g.start_ts, g.end_ts, g.reason, g.start_seq, g.end_seq)

    def describe(self) -> str:
        """A one-line account for the log."""
        return (
            f"{len(self._streams)} streams switched, {self.released} ticks from the new "
            f"session, {self.duplicates} duplicates and {self.dropped_old} late ticks of the "
            f"old one dropped, {self.gaps} gaps"
        )
