"""``DatabentoFactory``: what the hub asks for ``protocol = "databento"``."""

from __future__ import annotations

from hub_core.plugin import ConnectionFactory, ExchangeConfig, SimulatorSpec, Sink
from hub_plugin_databento.connection import DatabentoConnection, ResumeStore, split_endpoint
from hub_plugin_databento.options import DatabentoOptions
from hub_plugin_databento.simulator import DEFAULT_DATASET, DEFAULT_SYMBOLS, serve_simulator


def _sim_config(endpoint: str, symbols: list[str], options: dict[str, str]) -> ExchangeConfig:
    # the key comes from DATABENTO_API_KEY (the simulator takes any well-formed key)
    return ExchangeConfig.databento(
        options.get("dataset", DEFAULT_DATASET), endpoint=endpoint, symbols=list(symbols)
    )


def _demo_config(endpoint: str, symbols: list[str]) -> ExchangeConfig:
    # the simulator takes any well-formed key: the demo brings its own
    return ExchangeConfig.databento(
        DEFAULT_DATASET,
        api_key="db-hubdemo0000000000000000000000",
        endpoint=endpoint,
        symbols=list(symbols),
    )


class DatabentoFactory(ConnectionFactory):
    """Connections to Databento's live gateway (or a gateway at ``host:port``)."""

    protocol = "databento"
    options_model = DatabentoOptions
    description = "Databento live market data (official client; DBN into the hub's data plane)"

    def stale_after_ms(self, config: ExchangeConfig) -> int:
        """The gateway has no ping: a link is stale after the heartbeat interval plus
        10 s of silence, unless ``stale_after_ms`` is set in the config."""
        if "stale_after_ms" in config.model_fields_set:
            return config.stale_after_ms
        options = DatabentoOptions.model_validate(config.options)
        return max(config.stale_after_ms, (options.heartbeat_interval_s + 10) * 1000)

    def check_endpoint(self, endpoint: str) -> None:
        """``host:port``, ``[v6]:port``, or ``""`` for the dataset's live gateway."""
        if endpoint:
            split_endpoint(endpoint)

    def __init__(self) -> None:
        self._resume: dict[str, ResumeStore] = {}

    def create(self, config: ExchangeConfig, sink: Sink) -> DatabentoConnection:
        """A new, unconnected connection; raises pydantic ``ValidationError`` for bad options.

        Each exchange's connections share one ``ResumeStore``: a session resubscribes
        with a replay from where the previous one's stream stopped."""
        options = DatabentoOptions.model_validate(config.options)
        store = self._resume.setdefault(sink.exchange, ResumeStore())
        return DatabentoConnection(config, sink, options, store)

    def simulator(self) -> SimulatorSpec:
        """The loopback gateway (``hub sim databento``, ``hub demo``)."""
        return SimulatorSpec(
            serve=serve_simulator,
            demo_config=_demo_config,
            default_symbols=list(DEFAULT_SYMBOLS),
            default_rate=100.0,
            sim_config=_sim_config,
        )
