"""``hub sim websocket``: which venue runs (``--dialect``) and its ``-o KEY=VALUE`` options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from hub_core.simulation import OptionParser, parse_list, simulator_options as convert_options
from hub_plugin_websocket.simulators.base import WebSocketVenue
from hub_plugin_websocket.simulators.binance import DEFAULT_SYMBOLS, BinanceSimulator
from hub_plugin_websocket.simulators.coinbase import COINBASE_SYMBOLS, CoinbaseSimulator
from hub_plugin_websocket.simulators.kraken import KRAKEN_SYMBOLS, KrakenSimulator

__all__ = ["DIALECTS", "serve_simulator", "simulator_options"]

DIALECTS: Final = ("binance", "binance-futures", "coinbase", "kraken")
"""The venues ``hub sim websocket --dialect NAME`` runs."""


_FROM_TEXT: Final[dict[str, tuple[OptionParser, str]]] = {
    "seed": (int, "an integer"),
    "depth_levels": (int, "an integer"),
    "messages_per_second": (int, "an integer"),
    "max_streams": (int, "an integer"),
    "replay_speed": (float, "a number"),
    "ping_interval_s": (float, "a number"),
    "ping_timeout_s": (float, "a number"),
    "depth_interval_s": (float, "a number"),
    "shutdown_grace_s": (float, "a number"),
    "subscribe_deadline_s": (float, "a number"),
    "heartbeat_interval_s": (float, "a number"),
    "refuse_symbols": (parse_list, "a comma-separated list"),
    "refuse_resyncs": (int, "an integer (-1: all)"),
    "replay": (str, "a file"),
    "upgrade_status": (int, "an HTTP status (0: accept upgrades)"),
    "upgrade_retry_after": (str, "a Retry-After value"),
}
"""How an option given as text (``hub sim -o KEY=VALUE``) becomes the keyword's type."""
_COMMON_OPTIONS: Final = frozenset(
    {
        "seed",
        "depth_levels",
        "refuse_symbols",
        "replay",
        "replay_speed",
        "ssl_context",
        "upgrade_status",
        "upgrade_retry_after",
    }
)
_OPTIONS: Final = {
    "binance": _COMMON_OPTIONS
    | {
        "ping_interval_s",
        "ping_timeout_s",
        "messages_per_second",
        "max_streams",
        "depth_interval_s",
        "shutdown_grace_s",
    },
    "coinbase": _COMMON_OPTIONS | {"subscribe_deadline_s", "heartbeat_interval_s"},
    "kraken": _COMMON_OPTIONS | {"heartbeat_interval_s", "refuse_resyncs"},
}
"""The keywords each venue's simulator takes besides host, port, symbols and rate."""


def simulator_options(dialect: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for the ``dialect`` venue's simulator, text values converted to the
    keyword's type (``"0.5"`` -> 0.5); ``ValueError`` naming the option otherwise."""
    known = _OPTIONS["binance" if dialect == "binance-futures" else dialect]
    return convert_options(dialect, options, {key: _FROM_TEXT.get(key) for key in known})


async def serve_simulator(
    host: str,
    port: int,
    symbols: list[str],
    rate: float,
    ready: Callable[[str, int], None],
    *,
    dialect: str = "binance",
    **kwargs: Any,
) -> None:
    """Run a simulator until cancelled (``SimulatorSpec.serve`` for ``hub sim``/``hub demo``).

    ``dialect`` picks the venue: ``binance``, ``binance-futures``, ``coinbase`` or
    ``kraken``. ``hub sim`` passes the spec's default symbols (Binance's) when
    ``--symbols`` is absent; those are no Coinbase or Kraken symbols, so that list
    means "the venue's own defaults" there, and "the recording's symbols" with
    ``replay=FILE``. ``kwargs`` are the venue's options (``hub sim -o KEY=VALUE``:
    text is converted, see ``simulator_options``).
    """
    if dialect not in DIALECTS:
        raise ValueError(
            f"the simulator speaks binance, binance-futures, coinbase and kraken, not {dialect!r}"
        )
    kwargs = simulator_options(dialect, kwargs)
    replaying = kwargs.get("replay") is not None
    if list(symbols) == list(DEFAULT_SYMBOLS) and (replaying or dialect in ("coinbase", "kraken")):
        symbols = []  # hub sim's stand-in for "no --symbols"
    # no symbols: the recording's, or else the venue's own
    venue: WebSocketVenue[Any, Any]
    if dialect == "coinbase":
        venue = CoinbaseSimulator(
            symbols or ([] if replaying else COINBASE_SYMBOLS), rate, host=host, port=port, **kwargs
        )
    elif dialect == "kraken":
        venue = KrakenSimulator(
            symbols or ([] if replaying else KRAKEN_SYMBOLS), rate, host=host, port=port, **kwargs
        )
    else:
        venue = BinanceSimulator(
            symbols or ([] if replaying else DEFAULT_SYMBOLS),
            rate,
            host=host,
            port=port,
            futures=dialect == "binance-futures",
            **kwargs,
        )
    await venue.serve(ready)
