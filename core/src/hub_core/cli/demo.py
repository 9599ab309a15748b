"""Plugin simulators for ``hub demo`` and ``hub sim``.

A plugin ships its simulator through ``ConnectionFactory.simulator()`` (a
``SimulatorSpec``). ``hub demo`` starts every installed one on 127.0.0.1
(port 0: the OS picks a free port) and points a hub at them; ``hub sim``
runs one alone, by default on loopback too.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from hub_core.cli.session import first_error
from hub_core.config import ExchangeConfig, HubConfig
from hub_core.contracts import SimulatorSpec
from hub_core.errors import HubError
from hub_core.registry import ExchangeRegistry

log = logging.getLogger("hub_core.cli.demo")

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 10.0
"""How long a simulator may take to start listening."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: could be anywhere
        return False


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_list(text: str | None) -> list[str] | None:
    """A comma-separated option: ``"ES,NQ"`` -> ``["ES", "NQ"]``; ``None`` when not given."""
    if text is None:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def simulators(registry: ExchangeRegistry) -> dict[str, SimulatorSpec]:
    """Every protocol whose plugin ships a simulator, by protocol name."""
    found: dict[str, SimulatorSpec] = {}
    for protocol, factory in sorted(registry.factories().items()):
        try:
            spec = factory.simulator()
        except Exception as exc:  # one broken plugin never hides the others
            log.error("the %s plugin's simulator() raised: %r", protocol, exc)
            continue
        if spec is not None:
            found[protocol] = spec
    return found


def unknown_simulator_message(protocol: str, registry: ExchangeRegistry) -> str:
    """The error for ``hub sim <protocol>`` when there is no such simulator."""
    available = ", ".join(simulators(registry)) or "none"
    without = [p for p in registry.protocols() if p not in simulators(registry)]
    if protocol in without:
        return f"the {protocol} plugin ships no simulator (available: {available})"
    return (
        f"no simulator for protocol {protocol!r} (available: {available}): pick an available "
        "one, or install the plugin that provides it (`hub plugins` lists what is installed)"
    )


@dataclass
class RunningSimulator:
    """A simulator that is listening."""

    protocol: str
    spec: SimulatorSpec
    host: str
    port: int
    symbols: list[str]

    @property
    def endpoint(self) -> str:
        return host_port(self.host, self.port)

    def exchange_config(self) -> ExchangeConfig:
        """The connection to this simulator, named after its protocol."""
        cfg = self.spec.demo_config(self.endpoint, list(self.symbols))
        if not cfg.name:
            cfg = cfg.model_copy(update={"name": self.protocol})
        return cfg


async def start_simulator(
    tg: TaskGroup,
    protocol: str,
    spec: SimulatorSpec,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    symbols: list[str] | None = None,
    rate: float | None = None,
    timeout: float = READY_TIMEOUT_S,
    options: dict[str, str] | None = None,
) -> RunningSimulator:
    """Start ``spec.serve`` in ``tg`` and return once it listens.

    The simulator runs until ``tg`` is cancelled; if it fails, the error
    reaches ``tg`` like any task's. ``options`` go to ``spec.serve`` as keywords.
    """
    syms = list(spec.default_symbols) if symbols is None else symbols
    where: list[tuple[str, int]] = []
    ready = anyio.Event()

    def on_ready(bound_host: str, bound_port: int) -> None:
        if not where:
            where.append((bound_host, bound_port))
            ready.set()

    per_symbol_rate = spec.default_rate if rate is None else rate

    async def serve() -> None:
        try:
            await spec.serve(host, port, syms, per_symbol_rate, on_ready, **(options or {}))
        except (OSError, BaseExceptionGroup) as exc:
            # a simulator that listens from its own task group raises a group
            err = first_error(exc)
            if where or not isinstance(err, OSError):  # failed while serving: as it is
                raise
            raise HubError(
                f"the {protocol} simulator could not listen: {err.strerror or err}",
                endpoint=host_port(host, port),
                hint="pick another --port, or 0 for any free one",
            ) from exc

    tg.start_soon(serve, name=f"hub-sim-{protocol}")
    try:
        with anyio.fail_after(timeout):
            await ready.wait()
    except TimeoutError:
        raise HubError(
            f"the {protocol} simulator did not start listening within {timeout:.0f} s",
            endpoint=host_port(host, port),
            hint="run `hub sim " + protocol + " --log-level debug` to see why",
        ) from None
    bound_host, bound_port = where[0]
    return RunningSimulator(protocol, spec, bound_host, bound_port, syms)


async def start_demo_simulators(
    tg: TaskGroup, registry: ExchangeRegistry, *, rate: float | None = None
) -> tuple[list[RunningSimulator], HubConfig]:
    """Start every installed simulator on loopback; the config that connects to all."""
    specs = simulators(registry)
    if not specs:
        problems = [f"{i.name}: {i.error}" for i in registry.plugins() if i.error]
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise HubError(
            f"no installed plugin ships a simulator{detail}",
            hint="install one, e.g. pip install hub-plugin-ninjatrader",
        )
    running: list[RunningSimulator] = []
    exchanges: dict[str, ExchangeConfig] = {}
    for protocol, spec in specs.items():
        sim = await start_simulator(tg, protocol, spec, host=LOOPBACK, port=0, rate=rate)
        log.info("%s simulator listening on %s", protocol, sim.endpoint)
        cfg = sim.exchange_config()
        running.append(sim)
        exchanges[cfg.name] = cfg
    return running, HubConfig(exchanges=exchanges)


def _toml_value(value: object) -> str:
    """A TOML literal for config values (strings, numbers, booleans, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def config_block(cfg: ExchangeConfig, name: str = "sim") -> str:
    """The ``[exchanges.NAME]`` table that connects to ``cfg``'s simulator, ready to paste
    into hub.toml (``hub sim`` prints it on stderr)."""
    lines = [
        f"[exchanges.{name}]",
        f"protocol = {_toml_value(cfg.protocol)}",
        f"endpoint = {_toml_value(cfg.endpoint)}",
        f"symbols = {_toml_value(list(cfg.symbols))}",
    ]
    if cfg.options:
        lines.append(f"options = {_toml_value(dict(cfg.options))}")
    return "\n".join(lines) + "\n"
