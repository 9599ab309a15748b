"""The loopback venue every simulator is built on: listener, clients, writers, faults.

``LoopbackVenue`` owns what every plugin simulator used to write for itself: a
listener on loopback (anyio TCP, optionally TLS), one ``VenueClient`` per connection
with an outgoing queue that exactly one writer task drains (so two messages never
interleave on the wire, whoever queues them), heartbeats on a timer, the bookkeeping
of connected clients and their subscriptions, the market clock driving a
``MarketModel``, and the venue faults of ``VenueFaults`` (all ``async def``). A
subclass speaks one wire protocol: it reads a client in ``serve_client``, queues
replies with ``client.send``, and turns market events into messages in
``on_market``.
"""

from __future__ import annotations

import abc
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import (
    Any,
    ClassVar,
    Generic,
    Protocol,
    Self,
    TypeAlias,
    TypeVar,
    TypeVarTuple,
    runtime_checkable,
)

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

from hub_core.simulation._loopback import host_port, require_loopback, reset_on_close
from hub_core.simulation._market import MarketModel, MarketUpdate

log = logging.getLogger("hub_core.simulation")

Message: TypeAlias = bytes | str
"""One message a venue sends: bytes, or text (UTF-8 on a byte stream, a text frame on
a WebSocket)."""

K = TypeVar("K")
C = TypeVar("C", bound="VenueClient[Any]")
Ts = TypeVarTuple("Ts")

_CLIENT_GONE: tuple[type[BaseException], ...] = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
_FLUSH_S = 1.0
"""How long a client that is done may take to receive what is still queued for it."""


class BackgroundServer:
    """Mixin for a server with ``serve(ready=None, *, task_status=...)``.

    ``serve`` must call ``task_status.started()`` once it listens (and
    ``ready(host, port)`` if given) and run until cancelled. ``async with server:``
    starts it in a task group and returns once it listens; leaving the block stops it.
    """

    _tg_cm: anyio.abc.TaskGroup | None = None

    async def serve(
        self,
        ready: Callable[[str, int], None] | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until cancelled (a subclass implements it)."""
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


class Gate:
    """Open or closed; ``wait_open()`` returns at once, or when it opens again."""

    def __init__(self) -> None:
        self._closed: anyio.Event | None = None

    @property
    def closed(self) -> bool:
        """Whether it is closed now."""
        return self._closed is not None

    def close(self) -> None:
        """Close it (waiters block until ``open()``)."""
        if self._closed is None:
            self._closed = anyio.Event()

    def open(self) -> None:
        """Open it and wake every waiter."""
        event, self._closed = self._closed, None
        if event is not None:
            event.set()

    async def wait_open(self) -> None:
        """Return when it is open."""
        while (event := self._closed) is not None:
            await event.wait()


class StallSwitch:
    """Mixin for the stall fault: senders ``await self.wait_while_stalled()`` before
    each write, so ``stall()`` silences a venue while its sockets stay open."""

    _stall_gate: Gate | None = None

    @property
    def _stall(self) -> Gate:
        if self._stall_gate is None:
            self._stall_gate = Gate()
        return self._stall_gate

    async def stall(self) -> None:
        """Send nothing until ``resume()``; sockets stay open."""
        self._stall.close()

    async def resume(self) -> None:
        """End a stall."""
        self._stall.open()

    @property
    def stalled(self) -> bool:
        """Whether ``stall()`` is in force."""
        return self._stall.closed

    async def wait_while_stalled(self) -> None:
        """Return at once, or when the current stall ends."""
        await self._stall.wait_open()


@runtime_checkable
class VenueFaults(Protocol):
    """The faults every simulator injects, the same way for every wire (all async, so a
    test awaits them whatever the simulator does underneath)."""

    async def drop_connections(self) -> int:
        """Cut every client connection abruptly, as a venue whose process died (TCP
        reset, no close frame); keep listening. Returns how many were cut."""

    async def stall(self) -> None:
        """Send nothing at all (data, answers, heartbeats) until ``resume()``; sockets
        stay open."""

    async def resume(self) -> None:
        """End a stall: what was queued meanwhile is sent."""

    async def send_malformed(self) -> None:
        """Send one malformed message to every client, then carry on normally."""

    async def skip_sequence(self) -> None:
        """Lose one message of every client's sequenced stream: the client must see a
        sequence gap (or the wire's equivalent)."""

    async def refuse_credentials(self, on: bool = True) -> None:
        """While on, refuse every logon (or upgrade) as wrong credentials, the wire's
        way, even valid ones; connected sessions go on."""

    async def refuse_symbol(self, symbol: str, on: bool = True) -> None:
        """While on, refuse subscriptions of ``symbol`` the wire's way (as for an unknown
        instrument); sessions already subscribed to it keep it."""


class ClientLink(Protocol):
    """How a venue reads from, writes to and cuts off one client."""

    async def send(self, messages: list[Message]) -> None:
        """Write ``messages`` in order (the client's writer task is the only caller)."""

    async def receive(self) -> Message | None:
        """The next data from the client; None once it is gone."""

    def abort(self) -> None:
        """Make the end of this connection abrupt (a TCP reset, no close frame)."""

    def pause_reading(self) -> None:
        """Stop taking the client's data off the socket (its buffers fill up)."""

    def resume_reading(self) -> None:
        """Take the client's data again."""

    async def aclose(self) -> None:
        """Close the connection (after ``abort()``: abruptly)."""


class StreamLink:
    """A ``ClientLink`` over an anyio byte stream (TCP, or TLS over TCP): the messages of
    one write are concatenated into one ``send``; text is encoded as UTF-8."""

    def __init__(self, stream: anyio.abc.ByteStream, receive_size: int = 65536) -> None:
        self.stream = stream
        self.receive_size = receive_size

    async def send(self, messages: list[Message]) -> None:
        """Write every message in one ``send``."""
        data = b"".join(m if isinstance(m, bytes) else m.encode() for m in messages)
        if data:
            await self.stream.send(data)

    async def receive(self) -> bytes | None:
        """Up to ``receive_size`` bytes, or None at end of stream."""
        try:
            return await self.stream.receive(self.receive_size)
        except anyio.EndOfStream:
            return None

    def abort(self) -> None:
        """Closing will send a TCP reset."""
        reset_on_close(self.stream)

    def pause_reading(self) -> None:
        """Nothing to do: the venue stops calling ``receive`` (see ``VenueClient``)."""

    def resume_reading(self) -> None:
        """Nothing to do (see ``pause_reading``)."""

    async def aclose(self) -> None:
        """Close the stream."""
        await self.stream.aclose()


class VenueClient(Generic[K]):
    """One connected client of a ``LoopbackVenue``.

    ``send(message)`` queues a message (synchronously, so the order of the calls is
    the order on the wire); the client's writer task writes everything queued in one
    go. ``subscriptions`` is what the client subscribed (``K``: symbols, or the
    venue's stream keys); ``established`` turns True once it passed the venue's
    handshake (logon), from when it is counted in ``session_count`` and gets
    heartbeats. Subclass it for a wire's per-session state.
    """

    def __init__(self, venue: LoopbackVenue[Any], link: ClientLink) -> None:
        self.venue = venue
        self.link = link
        self.number = venue.connections_accepted
        """The how-many-th connection of the venue this is (from 1)."""
        self.subscriptions: set[K] = set()
        self.established = False
        self.heartbeat_s: float | None = venue.heartbeat_s
        """Heartbeat after this many idle seconds (None: none); a wire may negotiate it."""
        now = time.monotonic()
        self.connected_at = now
        self.last_send = now
        """``time.monotonic()`` of the last write (or of the connection)."""
        self.last_heartbeat = now
        self.messages_sent = 0
        self.writing = False
        """The writer is inside a write that has not completed (the client is not reading
        and the socket buffers are full, or a large write is under way)."""
        self.closing = False
        self._queue: deque[Message] = deque()
        self._queued = 0
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._scope: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    # -- output ---------------------------------------------------------------------------
    def send(self, message: Message) -> None:
        """Queue ``message`` for the writer (never blocks, never interleaves)."""
        self._queue.append(message)
        self._queued += len(message)
        if self._idle.is_set():
            self._idle = anyio.Event()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Messages queued and not written yet."""
        return len(self._queue)

    @property
    def backlog(self) -> int:
        """Bytes (or characters) queued and not written yet."""
        return self._queued

    def discard_queue(self) -> int:
        """Forget everything queued (a client too slow to keep); returns how many."""
        n = len(self._queue)
        self._queue.clear()
        self._queued = 0
        return n

    async def drained(self) -> None:
        """Return once everything queued so far has been written."""
        while not (idle := self._idle).is_set():
            await idle.wait()

    def _take(self) -> list[Message]:
        batch = list(self._queue)
        self._queue.clear()
        self._queued = 0
        return batch

    # -- input ----------------------------------------------------------------------------
    async def receive(self) -> Message | None:
        """The client's next data (None once it is gone), after any pause of reading."""
        await self.venue._wait_reading()
        return await self.link.receive()

    async def receive_bytes(self) -> bytes:
        """``receive()`` for a byte stream: ``b""`` once the client is gone."""
        data = await self.receive()
        if data is None:
            return b""
        if isinstance(data, str):
            raise TypeError("receive_bytes() on a link that delivers text")
        return data

    # -- lifetime -------------------------------------------------------------------------
    def start_soon(self, func: Callable[[*Ts], Coroutine[Any, Any, Any]], *args: *Ts) -> None:
        """Run ``func(*args)`` as a task of this client: it ends with the connection."""
        if self._tg is None:
            raise RuntimeError("the client is not running")
        self._tg.start_soon(func, *args)

    def close(self) -> None:
        """End the connection once everything queued so far has been written."""
        self.closing = True
        self._wake.set()

    def abort(self) -> None:
        """End the connection now, abruptly (what ``drop_connections`` does)."""
        self.link.abort()
        if self._scope is not None:
            self._scope.cancel()


class LoopbackVenue(BackgroundServer, StallSwitch, abc.ABC, Generic[C]):
    """A venue on loopback: subclass it for one wire protocol (see the module docs).

    ``async with Venue(...) as venue:`` starts it (``venue.endpoint`` is where it
    listens); or ``await venue.serve(ready)``. A subclass implements ``new_client``,
    ``serve_client``, ``send_malformed`` and ``skip_sequence``, and usually
    ``on_market``, ``heartbeat`` and ``snapshot``-style replies of its own; it honours
    ``credentials_refused`` and ``symbol_refused(symbol)`` where its wire logs on and
    subscribes.
    """

    name: ClassVar[str] = "loopback"
    """The venue's name in logs (``"<name> simulator listening on ..."``)."""
    stall_reads: ClassVar[bool] = False
    """Whether ``stall()`` also stops reading clients (a frozen venue that answers no
    protocol ping either), not only writing to them."""
    market_interval_s: ClassVar[float] = 0.02
    """The market clock: ``on_market`` runs in steps this far apart."""
    client_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """Exceptions that end one client's session quietly (besides a closed socket)."""

    def __init__(
        self,
        market: MarketModel | None,
        rate: float = 100.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_s: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        refuse_symbols: Sequence[str] = (),
    ) -> None:
        self.host = require_loopback(host)
        self.port = port
        if not (rate >= 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.market = market
        """The market the venue streams (None: a venue with no market of its own)."""
        self.rate = float(rate)
        """Market events per second per symbol (may be changed while running)."""
        self.heartbeat_s = heartbeat_s
        self.ssl_context = ssl_context
        """Server TLS context: every connection does the TLS handshake first."""
        self.credentials_refused = False
        """``refuse_credentials()`` is in force: the subclass refuses every logon."""
        self.refused_symbols: set[str] = set(refuse_symbols)
        """Symbols whose subscriptions the subclass refuses (``refuse_symbol``)."""
        self.connections_accepted = 0
        """Connections accepted so far (before any handshake)."""
        self.tls_failures: list[str] = []
        """Every TLS handshake that failed, as ``ExceptionType: reason``."""
        self._clients: dict[C, None] = {}
        self._accepting = Gate()
        self._listen_scope: anyio.CancelScope | None = None
        self._reading_stopped = Gate()
        self._stall_reading = Gate()

    # -- what a subclass provides ---------------------------------------------------------
    @abc.abstractmethod
    def new_client(self, link: ClientLink) -> C:
        """The client object of a new connection."""

    @abc.abstractmethod
    async def serve_client(self, client: C) -> None:
        """Speak the wire with one client (read it with ``client.receive()``, answer with
        ``client.send``) until it is done; then what is queued is flushed and the
        connection closed."""

    def on_connect(self, client: C) -> None:
        """A client connected (its writer runs; ``client.start_soon`` starts its timers)."""

    def on_disconnect(self, client: C) -> None:
        """A client's connection is over."""

    def heartbeat(self, client: C) -> None:
        """Queue the client's heartbeat (called when ``heartbeat_due`` says so)."""

    def heartbeat_due(self, client: C) -> float | None:
        """Seconds until the client's next heartbeat (0: now; None: none). By default an
        established client with a ``heartbeat_s`` gets one after that long idle."""
        if not client.established or client.heartbeat_s is None:
            return None
        return max(0.0, client.last_send + client.heartbeat_s - time.monotonic())

    def before_write(self, client: C) -> None:
        """About to write what is queued (a wire adds its own notices here)."""

    def market_symbols(self) -> list[str]:
        """The symbols the market clock steps now: by default those some established
        client subscribed."""
        if self.market is None:
            return []
        wanted = {s for c in self._clients if c.established for s in c.subscriptions}
        return [s for s in self.market.symbols if s in wanted]

    def on_market(self, update: MarketUpdate, ts: int) -> None:
        """One market event (``ts``: its time, ns since the epoch): queue its messages."""

    def after_market_step(self, ts: int) -> None:
        """The market clock made every event of this step, if any (flush batched changes):
        called on every tick of the clock, also while ``rate`` is 0."""

    @abc.abstractmethod
    async def send_malformed(self) -> None:
        """Send one malformed message to every client, then carry on normally."""

    @abc.abstractmethod
    async def skip_sequence(self) -> None:
        """Lose one message of every client's sequenced stream."""

    # -- addresses and bookkeeping ------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """Where clients connect (``host:port``, IPv6 in brackets); a wire may add a scheme."""
        return host_port(self.host, self.port)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols of the venue's market."""
        return self.market.symbols if self.market is not None else ()

    def connected(self) -> list[C]:
        """Every connected client, in the order they connected."""
        return list(self._clients)

    @property
    def clients(self) -> int:
        """Connections open now (handshake or not)."""
        return len(self._clients)

    @property
    def session_count(self) -> int:
        """Clients past the handshake, now."""
        return sum(1 for c in self._clients if c.established)

    def subscriptions(self) -> list[set[Any]]:
        """The subscriptions of every client past the handshake, in connection order."""
        return [set(c.subscriptions) for c in self._clients if c.established]

    def sent_trades(self, symbol: str) -> list[tuple[int, int, str]]:
        """Trades the market made for ``symbol`` (the latest 100,000), in order, as
        ``(price, size, aggressor side)`` in fixed point: what a subscriber must get."""
        return self.market.trades(symbol) if self.market is not None else []

    def symbol_refused(self, symbol: str) -> bool:
        """Whether subscriptions of ``symbol`` are to be refused (``refuse_symbol``)."""
        return symbol in self.refused_symbols

    # -- faults ---------------------------------------------------------------------------
    async def drop_connections(self) -> int:
        """Cut every client connection abruptly (TCP reset); keep listening. Returns how
        many were cut."""
        clients = list(self._clients)
        for client in clients:
            client.abort()
        return len(clients)

    async def stall(self) -> None:
        """Send nothing (data, answers, heartbeats) until ``resume()``; with
        ``stall_reads`` read nothing either. Sockets stay open."""
        await super().stall()
        if self.stall_reads:
            self._stall_reading.close()
            for client in self._clients:
                client.link.pause_reading()

    async def resume(self) -> None:
        """End a stall: what was queued meanwhile is sent."""
        if self.stall_reads:
            self._stall_reading.open()
            if not self._reading_stopped.closed:
                for client in self._clients:
                    client.link.resume_reading()
        await super().resume()

    async def refuse_credentials(self, on: bool = True) -> None:
        """While on, every logon is refused as wrong credentials (see ``VenueFaults``)."""
        self.credentials_refused = on

    async def refuse_symbol(self, symbol: str, on: bool = True) -> None:
        """While on, subscriptions of ``symbol`` are refused (see ``VenueFaults``)."""
        if on:
            self.refused_symbols.add(symbol)
        else:
            self.refused_symbols.discard(symbol)

    def stop_reading(self) -> None:
        """Read nothing from any client until ``resume_reading()`` (a client's sends then
        block once the socket buffers fill) while the venue goes on sending."""
        self._reading_stopped.close()
        for client in self._clients:
            client.link.pause_reading()

    def resume_reading(self) -> None:
        """End ``stop_reading()``."""
        self._reading_stopped.open()
        if not self._stall_reading.closed:
            for client in self._clients:
                client.link.resume_reading()

    def refuse_connections(self) -> None:
        """Stop listening (new connections are refused); live sessions go on."""
        self._accepting.close()
        if self._listen_scope is not None:
            self._listen_scope.cancel()

    def accept_connections(self) -> None:
        """Listen again, on the same port."""
        self._accepting.open()

    async def _wait_reading(self) -> None:
        await self._reading_stopped.wait_open()
        await self._stall_reading.wait_open()

    # -- lifecycle ------------------------------------------------------------------------
    async def serve(
        self,
        ready: Callable[[str, int], None] | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until cancelled; ``ready(host, port)`` once listening."""
        async with anyio.create_task_group() as tg:
            if self.market is not None:
                tg.start_soon(self._market_loop)
            await self.listen(tg, ready, task_status)

    async def listen(
        self,
        tg: anyio.abc.TaskGroup,
        ready: Callable[[str, int], None] | None,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        """Accept connections in ``tg`` until cancelled: an anyio TCP listener, closed
        while ``refuse_connections()`` is in force and opened again on the same port."""
        first = True
        while True:
            await self._accepting.wait_open()
            listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
            self.port = listener.listeners[0].extra(SocketAttribute.local_port)
            with anyio.CancelScope() as scope:
                self._listen_scope = scope
                async with listener:
                    if first:
                        first = False
                        self._started(ready, task_status)
                    await listener.serve(self._accept, tg)
            self._listen_scope = None

    def _started(
        self,
        ready: Callable[[str, int], None] | None,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        log.info("%s simulator listening on %s", self.name, self.endpoint)
        if ready is not None:
            ready(self.host, self.port)
        task_status.started()

    async def _accept(self, tcp: anyio.abc.SocketStream) -> None:
        self.connections_accepted += 1
        stream: anyio.abc.ByteStream = tcp
        if self.ssl_context is not None:
            wrapped = await self._tls_handshake(tcp, self.ssl_context)
            if wrapped is None:
                return
            stream = wrapped
        await self.run_client(self.new_client(StreamLink(stream)))

    async def _tls_handshake(
        self, tcp: anyio.abc.SocketStream, context: ssl.SSLContext
    ) -> anyio.abc.ByteStream | None:
        """The TLS server handshake; None (counted in ``tls_failures``, closed) if it fails."""
        timeout = 10.0
        try:
            with anyio.fail_after(timeout):
                return await TLSStream.wrap(
                    tcp, server_side=True, ssl_context=context, standard_compatible=False
                )
        except (
            ssl.SSLError,
            OSError,
            TimeoutError,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
        ) as exc:
            if isinstance(exc, ssl.SSLError):
                reason = exc.reason or str(exc)
            elif isinstance(exc, anyio.EndOfStream | anyio.BrokenResourceError):
                reason = "the client closed the connection during the handshake"
            elif isinstance(exc, TimeoutError):
                reason = f"no handshake within {timeout:g}s"
            else:
                reason = str(exc)
            self.tls_failures.append(f"{type(exc).__name__}: {reason}")
            log.info("%s simulator: TLS handshake failed: %s", self.name, self.tls_failures[-1])
            await anyio.aclose_forcefully(tcp)
            return None

    async def run_client(self, client: C) -> None:
        """Serve one client to the end: its writer, ``on_connect``, ``serve_client``, a
        last flush (skipped while stalled: a frozen venue says no goodbye), the close.
        Whatever goes wrong in one session ends that session, never the venue."""
        self._clients[client] = None
        if self._reading_stopped.closed or (self.stall_reads and self._stall_reading.closed):
            client.link.pause_reading()
        try:
            with anyio.CancelScope() as scope:
                client._scope = scope
                async with anyio.create_task_group() as tg:
                    client._tg = tg
                    tg.start_soon(self._write_loop, client)
                    self.on_connect(client)
                    await self.serve_client(client)
                    if not self.stalled:
                        with anyio.move_on_after(_FLUSH_S):
                            await client.drained()
                    tg.cancel_scope.cancel()
        except* (*_CLIENT_GONE, *self.client_errors) as group:
            log.debug("%s simulator: session ended: %r", self.name, group.exceptions)
        except* Exception as group:
            log.error(
                "%s simulator: session failed: %r",
                self.name,
                group.exceptions,
                exc_info=group.exceptions[0],
            )
        finally:
            client._tg = None
            self._clients.pop(client, None)
            self.on_disconnect(client)
            with anyio.CancelScope(shield=True):
                await client.link.aclose()

    async def _write_loop(self, client: C) -> None:
        """The one task that writes to ``client``: everything else queues with ``send``."""
        while True:
            if not client._queue and not client.closing:
                client._idle.set()
                with anyio.move_on_after(self._delay(client)):
                    await client._wake.wait()
                client._wake = anyio.Event()
            await self.wait_while_stalled()
            due = self.heartbeat_due(client)
            if due is not None and due <= 0:
                client.last_heartbeat = time.monotonic()
                self.heartbeat(client)
            self.before_write(client)
            batch = client._take()
            if batch:
                client.writing = True
                try:
                    await client.link.send(batch)
                finally:
                    client.writing = False
                client.last_send = time.monotonic()
                client.messages_sent += len(batch)
            if client.closing and not client._queue:
                client._idle.set()
                if client._scope is not None:
                    client._scope.cancel()
                return

    def _delay(self, client: C) -> float | None:
        due = self.heartbeat_due(client)
        # a heartbeat due now (but not sent: nothing to say) is looked at again shortly
        return None if due is None else max(due, 0.01)

    async def _market_loop(self) -> None:
        market = self.market
        assert market is not None
        last = time.monotonic()
        while True:
            await anyio.sleep(self.market_interval_s)
            now = time.monotonic()
            dt, last = now - last, now
            ts = time.time_ns()
            if self.rate > 0:
                for symbol in self.market_symbols():
                    for _ in range(market.steps_due(symbol, dt, self.rate)):
                        self.on_market(market.step(symbol), ts)
            # also with rate 0: a venue flushes what it batched (a quiet market's last changes)
            self.after_market_step(ts)


__all__ = [
    "BackgroundServer",
    "ClientLink",
    "Gate",
    "LoopbackVenue",
    "Message",
    "StallSwitch",
    "StreamLink",
    "VenueClient",
    "VenueFaults",
]
