"""``ExchangeId``: the name of one connection."""

from __future__ import annotations

from typing import ClassVar


class ExchangeId(str):
    """Names one connection of the hub. It *is* its name (a ``str``).

    A TOML entry ``[exchanges.es_feed]`` is ``ExchangeId("es_feed")``; ticks carry
    that same string in ``tick.exchange``, so ``tick.exchange == exchange_id``
    and every hub method accepts either. ``protocol`` records which plugin
    serves it when known. The constants name the single-venue protocols'
    default connections; ``websocket(name)`` and ``fix(name)`` name one venue of a
    multi-venue protocol.
    """

    protocol: str

    NINJATRADER: ClassVar[ExchangeId]
    INTERACTIVE_BROKERS: ClassVar[ExchangeId]
    DATABENTO: ClassVar[ExchangeId]

    def __new__(cls, name: str, protocol: str = "") -> ExchangeId:
        if not name or not isinstance(name, str):
            raise ValueError(f"an exchange name must be a non-empty string, got {name!r}")
        self = super().__new__(cls, name)
        self.protocol = protocol or getattr(name, "protocol", "")
        return self

    @classmethod
    def websocket(cls, name: str) -> ExchangeId:
        """A venue reached through the websocket plugin, e.g. ``websocket("binance")``."""
        return cls(name, "websocket")

    @classmethod
    def fix(cls, name: str) -> ExchangeId:
        """A FIX venue, e.g. ``fix("cme")``."""
        return cls(name, "fix")

    @property
    def name(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        if self.protocol and self.protocol != self.name:
            return f"ExchangeId({self.name!r}, protocol={self.protocol!r})"
        return f"ExchangeId({self.name!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (ExchangeId, (self.name, self.protocol))


ExchangeId.NINJATRADER = ExchangeId("ninjatrader", "ninjatrader")
ExchangeId.INTERACTIVE_BROKERS = ExchangeId("interactive_brokers", "ibkr")
ExchangeId.DATABENTO = ExchangeId("databento", "databento")
