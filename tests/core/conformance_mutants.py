"""The conformance suite against the line protocol plugin (tests/core/lineproto.py) and
against deliberately broken variants of it, one fault each.

Not collected by default (the name does not start with ``test_``): the broken
variants must fail. tests/core/test_conformance_mutants.py runs the good plugin in
the normal session and each broken variant's expected case in a subprocess, and
asserts that the case fails, for the reason it names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from hub_core import ExchangeConfig
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
