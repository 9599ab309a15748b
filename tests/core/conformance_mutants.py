"""The conformance suite against the line protocol plugin (tests/core/lineproto.py) and
against deliberately broken variants of it, one fault each.

Not collected by default (the name does not start with ``test_``): the broken
variants must fail. tests/core/test_conformance_mutants.py runs the good plugin in
the normal session and each broken variant's expected case in a subprocess, and
asserts that the case fails, for the reason it names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import anyio
import pytest

from hub_core import (
    AuthenticationError,
    ConnectionFailed,
    ConnectionHealth,
    ExchangeConfig,
    SubscriptionError,
)
from hub_core.testing import ConformanceSuite

from .lineproto import LineConnection, LineSimulator, Plugin


class LineConformance(ConformanceSuite):
    """The suite over the line protocol; ``connection`` picks the variant under test."""

    name = "line"
    symbols: ClassVar[list[str]] = ["AAA", "BBB"]
    connection: ClassVar[type[LineConnection]] = LineConnection

    @pytest.fixture
    async def simulator(self) -> AsyncIterator[LineSimulator]:
        async with LineSimulator().running() as sim:
            yield sim

    @pytest.fixture
    def plugin(self) -> object:
        return Plugin(self.connection)

    def make_config(self, endpoint: str, symbols: list[str], **overrides: Any) -> ExchangeConfig:
        return ExchangeConfig(
            protocol="lineproto",
            endpoint=endpoint,
            symbols=symbols,
            credentials={"username": "u", "password": "pw"},
            **overrides,
        )


# -- the broken variants: one fault each --------------------------------------------------
class ProbeNoop(LineConnection):
    """``probe()`` sends nothing, so a quiet link is never answered."""

    async def probe(self) -> None:
        return


class FrozenActivity(LineConnection):
    """``health().last_activity_ns`` stays at its value from the logon."""

    _frozen_ns = 0

    async def connect(self, endpoint: str) -> None:
        await super().connect(endpoint)
        self._frozen_ns = self._health.last_activity_ns

    def health(self) -> ConnectionHealth:
        h = super().health()
        return ConnectionHealth(h.connected, h.endpoint, self._frozen_ns, h.detail)


class CloseHangs(LineConnection):
    """``close()`` never returns (it closes the socket only when cancelled)."""

    async def close(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await super().close()


class RunReturnsOnDrop(LineConnection):
    """``run()`` returns when the server hangs up instead of raising."""

    async def run(self) -> None:
        try:
            await super().run()
        except ConnectionFailed:
            return


class WrongGapSymbol(LineConnection):
    """A connection-wide sequence hole is reported for the symbol that revealed it."""

    def _sequence_gap(self, symbol: str, expected: int, seq: int, ts_recv: int) -> None:
        reason = f"sequence gap: expected {expected}, got {seq}"
        self.sink.gap(symbol, self._last_data_ns, ts_recv, reason, expected, seq - 1)


class GapWithoutSequence(LineConnection):
    """The sequence Gap does not say which numbers are missing."""

    def _sequence_gap(self, symbol: str, expected: int, seq: int, ts_recv: int) -> None:
        self.sink.gap("", self._last_data_ns, ts_recv, f"sequence gap before {seq}")


class ZeroSequenceTicks(LineConnection):
    """The trade's sequence field is ignored: every tick carries ``sequence = 0``."""

    def _trade(self, parts: list[str], ts_recv: int) -> None:
        super()._trade(parts[:4], ts_recv)


class UnboundedReads(LineConnection):
    """Lines are buffered whole, however long (no read bound)."""

    async def _line(self) -> str:
        assert self.stream is not None
        while b"\n" not in self._buf:
            self._buf += await self.stream.receive()
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()


class IgnoresBackpressure(LineConnection):
    """Reads on while a ``"block"`` stream is full."""

    async def _pace(self) -> None:
        return


class DialsConfigEndpoint(LineConnection):
    """``connect()`` dials ``config.endpoint`` whatever endpoint it is given."""

    async def connect(self, endpoint: str) -> None:
        await super().connect(self.config.endpoint)


class RefusalDropsTheLink(LineConnection):
    """A refused subscription is raised as a link failure, not ``SubscriptionError``."""

    async def subscribe(self, symbols: Sequence[str]) -> None:
        try:
            await super().subscribe(symbols)
        except SubscriptionError as exc:
            raise ConnectionFailed(f"subscription failed: {exc.reason}") from exc


class RetriesRefusedLogin(LineConnection):
    """A refused logon is raised as a link failure, so the hub retries it forever."""

    async def connect(self, endpoint: str) -> None:
        try:
            await super().connect(endpoint)
        except AuthenticationError as exc:
            raise ConnectionFailed(f"logon failed: {exc.reason}") from exc


class MalformedKillsTheLink(LineConnection):
    """A bad trade line ends the session instead of being counted."""

    def _trade(self, parts: list[str], ts_recv: int) -> None:
        try:
            super()._trade(parts, ts_recv)
        except ValueError as exc:
            raise ConnectionFailed(f"bad line: {exc}") from exc


class IgnoresUnsubscribe(LineConnection):
    """``unsubscribe()`` sends nothing."""

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        return


class Mutant(LineConformance):
    """A broken variant: a cut-off ``timeout`` keeps the cases that must fail short."""

    timeout = 4.0


class TestProbeNoop(Mutant):
    connection = ProbeNoop


class TestFrozenActivity(Mutant):
    connection = FrozenActivity


class TestCloseHangs(Mutant):
    connection = CloseHangs


class TestRunReturnsOnDrop(Mutant):
    connection = RunReturnsOnDrop


class TestWrongGapSymbol(Mutant):
    connection = WrongGapSymbol


class TestGapWithoutSequence(Mutant):
    connection = GapWithoutSequence


class TestZeroSequenceTicks(Mutant):
    connection = ZeroSequenceTicks


class TestUnboundedReads(Mutant):
    connection = UnboundedReads


class TestIgnoresBackpressure(Mutant):
    connection = IgnoresBackpressure


class TestDialsConfigEndpoint(Mutant):
    connection = DialsConfigEndpoint


class TestRefusalDropsTheLink(Mutant):
    connection = RefusalDropsTheLink


class TestRetriesRefusedLogin(Mutant):
    connection = RetriesRefusedLogin


class TestMalformedKillsTheLink(Mutant):
    connection = MalformedKillsTheLink


class TestIgnoresUnsubscribe(Mutant):
    connection = IgnoresUnsubscribe


CAUGHT_BY: list[tuple[str, str, str]] = [
    ("TestProbeNoop", "test_quiet_link_is_probed_and_kept", "a quiet but live link was recycled"),
    ("TestProbeNoop", "test_probe_is_answered_and_counts_as_activity", "no answer to probe()"),
    (
        "TestFrozenActivity",
        "test_quiet_link_is_probed_and_kept",
        "a quiet but live link was recycled",
    ),
    (
        "TestFrozenActivity",
        "test_probe_is_answered_and_counts_as_activity",
        "last_activity_ns does not move",
    ),
    ("TestCloseHangs", "test_close_returns_promptly_and_ends_run", "close() did not return"),
    (
        "TestRunReturnsOnDrop",
        "test_run_raises_when_the_link_drops",
        "run() returned when the venue dropped the link",
    ),
    (
        "TestWrongGapSymbol",
        "test_sequence_gap_publishes_gap",
        "waiting for a sequence Gap for the connection or for each of",
    ),
    (
        "TestGapWithoutSequence",
        "test_sequence_gap_publishes_gap",
        "does not say which numbers are missing",
    ),
    ("TestZeroSequenceTicks", "test_trades_carry_sequence_numbers", "carry sequence 0"),
    (
        "TestUnboundedReads",
        "test_oversized_frame_is_refused_within_the_bound",
        "waiting for the oversized frame to be refused",
    ),
    (
        "TestIgnoresBackpressure",
        "test_block_stream_pauses_the_reader_and_loses_nothing",
        "while a block stream was full",
    ),
    (
        "TestDialsConfigEndpoint",
        "test_fails_over_to_a_backup_endpoint",
        "never connected through the backup",
    ),
    ("TestRefusalDropsTheLink", "test_refused_symbol_keeps_the_others", "ConnectionFailed"),
    ("TestRetriesRefusedLogin", "test_refused_credentials_stop_without_retrying", "auth_failed"),
    (
        "TestMalformedKillsTheLink",
        "test_malformed_input_is_counted_and_feed_continues",
        "waiting for the malformed frame to be counted",
    ),
    (
        "TestIgnoresUnsubscribe",
        "test_unsubscribe_stops_that_symbol",
        "t.symbol == gone",
    ),
]
"""(broken variant, the case that must fail for it, text its failure must contain)."""
