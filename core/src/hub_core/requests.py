"""Request / acknowledgement bookkeeping for a plugin's control plane.

Most venues answer a subscribe, an unsubscribe or a logon with an
acknowledgement that carries the request's id, or with a refusal that names
the symbols it refused. ``PendingRequests`` holds what was sent and not yet
answered; the connection's reader settles entries as answers arrive, the
caller awaits them with one timeout, and a disconnect fails everything still
open. It is sans-I/O apart from the wait, so it is tested without sockets.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio

from hub_core.errors import ConnectionFailed, SubscriptionError


@dataclass
class Pending:
    """One request in flight: what it asked for and, once settled, the answer."""

    key: Hashable
    symbols: tuple[str, ...] = ()
    done: anyio.Event = field(default_factory=anyio.Event)
    refused: dict[str, str] = field(default_factory=dict)
    """Symbols the venue refused, with its reason (a partial refusal)."""
    failure: str = ""
    """Why the whole request failed (refused outright, or lost with the link)."""
    lost: bool = False
    """True when the link went away before an answer came: retry on the next session."""
    sent: anyio.Event = field(default_factory=anyio.Event)
    """Set once the request is on the wire (at once unless opened ``paced=True``)."""
    result: object = None
    """What the acknowledgement carried, for requests that return something."""

    def lose(self, reason: str) -> None:
        """The request will never be answered (its send failed, or the link went away)."""
        self.failure = reason
        self.lost = True
        self.done.set()
        self.sent.set()


class PendingRequests:
    """Requests awaiting the venue's answer, by key (usually the request id).

    ``send_lock`` serialises writes for the connection that owns it: a probe, a
    heartbeat and a subscribe may be due at once, and a socket that blocks on
    write would otherwise interleave their bytes (or, with anyio, raise
    ``BusyResourceError``).
    """

    def __init__(
        self,
        exchange: str = "",
        endpoint: str = "",
        timeout_s: float = 10.0,
        timeout_hint: str = "the venue may be overloaded or ignoring requests; the hub reconnects",
        venue: str = "the venue",
        unanswered: Literal["reconnect", "refuse", "accept"] = "reconnect",
    ) -> None:
        self.exchange = exchange
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.timeout_hint = timeout_hint
        """What an unanswered request's ``ConnectionFailed`` tells the user to do."""
        self.venue = venue
        """Who refuses, in messages ("the venue", "the add-on")."""
        self.unanswered = unanswered
        """What a request left unanswered past ``timeout_s`` raises: ``"reconnect"``, a
        ``ConnectionFailed`` (the hub reconnects and asks again); ``"refuse"``, a
        ``SubscriptionError`` naming its symbols (the session goes on without them);
        ``"accept"``, nothing: a protocol that only ever answers with a refusal (FIX's
        MarketDataRequestReject) takes silence as acceptance."""
        self.send_lock = anyio.Lock()
        self._open: dict[Hashable, Pending] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, key: object) -> bool:
        return key in self._open

    def open(self, key: Hashable, symbols: Sequence[str] = (), *, paced: bool = False) -> Pending:
        """Register a request before sending it (an answer may beat the send's return).

        ``paced``: the request waits in a queue (rate limits) and the sender sets
        ``pending.sent`` once it is on the wire; the answer's timeout starts only then,
        since waiting for a turn to send is not the venue's fault.
        """
        if key in self._open:
            raise ValueError(f"request {key!r} is already pending")
        pending = Pending(key, tuple(symbols))
        if not paced:
            pending.sent.set()
        self._open[key] = pending
        return pending

    def get(self, key: Hashable) -> Pending | None:
        """The open request ``key`` (None once settled, or never opened)."""
        return self._open.get(key)

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` without an answer (its send failed: nobody will wait for it)."""
        self._open.pop(key, None)

    def refuse_symbol(self, key: Hashable, symbol: str, reason: str) -> bool:
        """The venue refused one ``symbol`` of ``key`` and will acknowledge the rest later
        (a per-symbol reject before the request's answer). False for an unknown key."""
        pending = self._open.get(key)
        if pending is None:
            return False
        pending.refused[symbol] = reason
        return True

    def acknowledge(
        self, key: Hashable, refused: dict[str, str] | None = None, result: object = None
    ) -> bool:
        """The venue answered ``key``; ``refused`` names symbols it would not take.

        Returns False for an unknown key (a late or duplicate answer), which the
        caller may count as a venue error.
        """
        pending = self._open.pop(key, None)
        if pending is None:
            return False
        if refused:
            pending.refused.update(refused)
        pending.result = result
        pending.done.set()
        return True

    def refuse(self, key: Hashable, reason: str) -> bool:
        """The venue refused ``key`` outright: every symbol it named is refused."""
        pending = self._open.pop(key, None)
        if pending is None:
            return False
        pending.failure = reason
        for symbol in pending.symbols:  # a per-symbol reason already given is kept
            pending.refused.setdefault(symbol, reason)
        pending.done.set()
        return True

    def lose_all(self, reason: str) -> None:
        """The link went away: fail every open request (call from the reader's finally)."""
        open_now, self._open = self._open, {}
        for pending in open_now.values():
            pending.lose(reason)

    async def wait(self, requests: Iterable[Pending], what: str = "request") -> dict[str, str]:
        """Wait for every request; returns the refused symbols with the venue's reasons.

        Raises ``ConnectionFailed`` when the link was lost or no answer came within
        ``timeout_s`` (the supervisor then reconnects and asks again).
        """
        requests = list(requests)
        for pending in requests:
            await pending.sent.wait()  # queued behind a rate limit: not the venue's time
        try:
            with anyio.fail_after(self.timeout_s):
                for pending in requests:
                    await pending.done.wait()
        except TimeoutError:
            for pending in requests:
                self._open.pop(pending.key, None)
            if self.unanswered == "accept":
                requests = [p for p in requests if p.done.is_set()]  # the rest: taken
            elif self.unanswered == "refuse":
                symbols = [s for p in requests if not p.done.is_set() for s in p.symbols]
                shown = ", ".join(repr(s) for s in symbols[:10])
                more = f" and {len(symbols) - 10} more" if len(symbols) > 10 else ""
                raise SubscriptionError(
                    f"no {what} acknowledgement within {self.timeout_s:g}s for {shown}{more}",
                    exchange=self.exchange,
                    endpoint=self.endpoint,
                    hint=self.timeout_hint,
                ) from None
            raise ConnectionFailed(
                f"no answer to {what} within {self.timeout_s:g} s",
                exchange=self.exchange,
                endpoint=self.endpoint,
                hint=self.timeout_hint,
            ) from None
        lost = [p for p in requests if p.lost]
        if lost:
            raise ConnectionFailed(
                f"{what} not answered: {lost[0].failure}",
                exchange=self.exchange,
                endpoint=self.endpoint,
            )
        refused: dict[str, str] = {}
        for pending in requests:
            refused.update(pending.refused)
        return refused

    async def subscribe(self, requests: Iterable[Pending], hint: str = "") -> None:
        """``wait`` for subscription requests, then raise one ``SubscriptionError`` naming
        every refused symbol (the others stay subscribed)."""
        refused = await self.wait(requests, "subscribe")
        if refused:
            listed = ", ".join(f"{s!r} ({why})" for s, why in sorted(refused.items()))
            raise SubscriptionError(
                f"{self.venue} refused {len(refused)} symbol(s): {listed}",
                refused=refused,
                exchange=self.exchange,
                endpoint=self.endpoint,
                hint=hint,
            )


__all__ = ["Pending", "PendingRequests"]
