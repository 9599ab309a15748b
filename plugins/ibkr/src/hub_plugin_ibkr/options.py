"""``options`` of a ``protocol = "ibkr"`` connection (validated by pydantic).

Example (TOML)::

    [exchanges.ib]
    protocol = "ibkr"
    endpoint = "127.0.0.1:7497"              # TWS or IB Gateway
    symbols = ["AAPL", "ESZ6"]
    [exchanges.ib.options]                   # a table: TOML cannot extend an inline one
    client_id = 7
    market_data = "top"
    [exchanges.ib.options.contracts]         # symbols not listed: US stock, SMART, USD
    ESZ6 = { sec_type = "FUT", exchange = "CME", currency = "USD",
             last_trade_date = "202612", symbol = "ES" }
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub_core.plugin import PluginOptions

MarketData = Literal["top", "tick_by_tick", "depth"]
MarketDataType = Literal["live", "frozen", "delayed", "delayed_frozen"]
TickByTickType = Literal["AllLast", "BidAsk"]

MARKET_DATA_TYPE_CODES: dict[str, int] = {"live": 1, "frozen": 2, "delayed": 3, "delayed_frozen": 4}
"""``market_data_type`` as the number ``reqMarketDataType`` sends (and ``marketDataType``
reports back)."""
MARKET_DATA_TYPE_NAMES: dict[int, str] = {v: k for k, v in MARKET_DATA_TYPE_CODES.items()}


def _default_tbt_types() -> list[TickByTickType]:
    return ["AllLast", "BidAsk"]


class ContractSpec(PluginOptions):
    """One entry of ``contracts``: how a hub symbol is named to IB."""

    sec_type: str = Field(default="STK", min_length=1, max_length=8)
    """IB security type: ``STK``, ``FUT``, ``OPT``, ``CASH``, ``IND``, ``CFD``..."""
    exchange: str = Field(default="SMART", min_length=1, max_length=32)
    """IB exchange (``SMART`` routes stocks; futures name theirs, e.g. ``CME``)."""
    currency: str = Field(default="USD", min_length=3, max_length=3)
    """The contract's currency."""
    last_trade_date: str = Field(default="", max_length=17)
    """``lastTradeDateOrContractMonth``: ``YYYYMM`` or ``YYYYMMDD`` (futures, options)."""
    symbol: str = Field(default="", max_length=32)
    """IB's symbol (``ES`` for ``ESZ6``); empty: the hub symbol itself."""
    primary_exchange: str = Field(default="", max_length=32)
    """``primaryExchange``, to tell a SMART-routed stock from another of the same symbol."""
    local_symbol: str = Field(default="", max_length=32)
    """IB's ``localSymbol`` (``ESZ6``), an alternative to ``last_trade_date``."""
    trading_class: str = Field(default="", max_length=32)
    """IB's ``tradingClass``."""
    multiplier: str = Field(default="", max_length=16)
    """The contract multiplier, where IB needs it to tell contracts apart."""
    strike: float = Field(default=0.0, ge=0)
    """Option strike (0: none)."""
    right: Literal["", "C", "P"] = ""
    """Option right: ``C``all or ``P``ut."""
    con_id: int = Field(default=0, ge=0)
    """IB's contract id, if known (skips nothing: the contract is still qualified once)."""


class IbkrOptions(PluginOptions):
    """Protocol options of a TWS / IB Gateway connection."""

    client_id: int = Field(default=0, ge=0, le=2_147_483_647)
    """The API client id; every client of one TWS needs its own (error 326 otherwise)."""
    market_data: MarketData = "top"
    """What to stream per symbol: ``top`` (``reqMktData``: bid/ask -> Quote, last ->
    Trade; IB samples it about every 250 ms), ``tick_by_tick`` (``reqTickByTickData``:
    every trade and quote) or ``depth`` (``reqMktDepth``: BookUpdates)."""
    market_data_type: MarketDataType = "live"
    """The market-data type asked for (``reqMarketDataType``); what IB actually grants is
    reported per symbol (delayed data is never passed off as live)."""
    contracts: dict[str, ContractSpec] = Field(default_factory=dict)
    """Hub symbol -> IB contract; a symbol not listed is a US stock on SMART in USD."""
    tick_by_tick_types: list[TickByTickType] = Field(
        default_factory=_default_tbt_types, min_length=1, max_length=2
    )
    """With ``market_data = "tick_by_tick"``: which streams each symbol gets (``AllLast``
    -> Trade, ``BidAsk`` -> Quote); each counts toward ``max_tick_by_tick``."""
    max_market_data_lines: int = Field(default=100, ge=1, le=10_000)
    """Market-data lines the account has (IB's default is 100): a ``top`` subscription
    past this is refused before IB is asked."""
    max_tick_by_tick: int = Field(default=5, ge=1, le=500)
    """Tick-by-tick streams allowed at once (IB allows 5 % of the lines; the next one
    gets error 10190): refused before IB is asked."""
    max_depth: int = Field(default=3, ge=1, le=100)
    """Depth (``reqMktDepth``) subscriptions allowed at once (IB's default is 3)."""
    depth_rows: int = Field(default=5, ge=1, le=50)
    """Rows per side asked for with ``market_data = "depth"``."""
    tick_by_tick_interval_s: float = Field(default=15.0, ge=0, le=600)
    """IB accepts one tick-by-tick request per instrument per 15 s: a resubscription
    sooner than this waits out the rest."""
    backfill: bool = False
    """After 1101 (connectivity restored, data lost): ask ``reqHistoricalTicks`` for the
    trades since the last one seen and publish them, so the Gap covers only the rest."""
    backfill_pages: int = Field(default=5, ge=1, le=60)
    """At most this many ``reqHistoricalTicks`` pages (1000 trades each) per symbol per
    backfill (IB allows 60 historical requests per 10 minutes)."""
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long the handshake, ``nextValidId`` and the start-up requests may take."""
    request_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """How long a contract lookup or a subscription's first answer may take."""
    subscribe_settle_s: float = Field(default=0.5, gt=0, le=60)
    """IB acknowledges no subscription: how long ``subscribe`` waits for each request's
    first answer (data, or the error refusing it) before taking it as accepted."""
    account: str = Field(default="", max_length=32)
    """The account whose start-up data ib_async syncs (empty: the only one managed)."""
