"""The simulator kit: what every plugin's loopback simulator is built from.

A plugin imports it as ``hub_core.simulation`` (never its submodules):

- ``LoopbackVenue`` / ``VenueClient`` / ``StreamLink``: a venue on loopback (anyio
  listener, one writer per client, heartbeats, client bookkeeping, the market clock)
  and the async fault API ``VenueFaults`` it implements;
- ``MarketModel`` / ``Instrument`` / ``Regime``: the seeded random-walk market with
  moving volatility that every simulator streams;
- ``require_loopback``, ``host_port``, ``reset_on_close``: where a simulator listens;
- ``simulator_options`` and its parsers: ``hub sim -o KEY=VALUE`` as keywords;
- the core's DBN encoders and tick types, for venues whose wire is DBN.

See sdk-docs/simulation.md.
"""

from hub_core.dbn import (
    UNDEF_PRICE,
    UNDEF_TIMESTAMP,
    encode_book_clear,
    encode_book_update,
    encode_error,
    encode_heartbeat,
    encode_mbp1_raw,
    encode_symbol_mapping,
    encode_system,
    encode_trade_raw,
)
from hub_core.fixed import PRICE_SCALE, format_fixed
from hub_core.simulation._loopback import (
    LOOPBACK_HOSTS,
    NotLoopbackError,
    host_port,
    require_loopback,
    reset_on_close,
)
from hub_core.simulation._market import (
    ADD,
    ASK,
    BID,
    CALM,
    CANCEL,
    DEFAULT_REGIMES,
    MODIFY,
    TRADE_LOG,
    VOLATILE,
    Book,
    Instrument,
    LevelChange,
    MarketModel,
    MarketTrade,
    MarketUpdate,
    Regime,
)
from hub_core.simulation._options import (
    OptionParser,
    parse_bool,
    parse_list,
    parse_users,
    simulator_options,
)
from hub_core.simulation._venue import (
    BackgroundServer,
    ClientLink,
    Gate,
    LoopbackVenue,
    Message,
    StallSwitch,
    StreamLink,
    VenueClient,
    VenueFaults,
)
from hub_core.ticks import BookClear, BookSnapshot, BookUpdate, Quote, Side, Trade

__all__ = [
    # where a simulator listens
    "LOOPBACK_HOSTS",
    "NotLoopbackError",
    "host_port",
    "require_loopback",
    "reset_on_close",
    # the market
    "ADD",
    "ASK",
    "BID",
    "CALM",
    "CANCEL",
    "DEFAULT_REGIMES",
    "MODIFY",
    "TRADE_LOG",
    "VOLATILE",
    "Book",
    "Instrument",
    "LevelChange",
    "MarketModel",
    "MarketTrade",
    "MarketUpdate",
    "Regime",
    # the venue
    "BackgroundServer",
    "ClientLink",
    "Gate",
    "LoopbackVenue",
    "Message",
    "StallSwitch",
    "StreamLink",
    "VenueClient",
    "VenueFaults",
    # hub sim -o
    "OptionParser",
    "parse_bool",
    "parse_list",
    "parse_users",
    "simulator_options",
    # the wire: fixed point, DBN encoders, ticks
    "PRICE_SCALE",
    "UNDEF_PRICE",
    "UNDEF_TIMESTAMP",
    "BookClear",
    "BookSnapshot",
    "BookUpdate",
    "Quote",
    "Side",
    "Trade",
    "encode_book_clear",
    "encode_book_update",
    "encode_error",
    "encode_heartbeat",
    "encode_mbp1_raw",
    "encode_symbol_mapping",
    "encode_system",
    "encode_trade_raw",
    "format_fixed",
]
