"""``hub`` command line: argument parsing and one function per command.

Exit codes (``ExitCode``): 0 clean stop, 1 fatal error while running, 2 bad
command line or configuration. Errors are one line on stderr; stdout carries
only what a command produces (``--jsonl`` lines, ``--json``, ``listening on``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

import anyio
from anyio.abc import TaskGroup

import hub_core
from hub_core.cli.session import ExitCode, Session, SessionOptions, fatal_message, first_error
from hub_core.config import Credentials, HubConfig
from hub_core.contracts import SimulatorSpec
from hub_core.errors import ConfigError, HubError, PluginError
from hub_core.hub import ExchangeHub
from hub_core.redact import SECRETS, endpoint_secrets, one_line
from hub_core.registry import ExchangeRegistry

log = logging.getLogger("hub_core.cli")

LOG_LEVELS = ("debug", "info", "warning", "error")


# -- small helpers -------------------------------------------------------------------
def error(message: str, code: ExitCode = ExitCode.FATAL) -> int:
    """Print ``hub: error: <one line>`` on stderr and return ``code``."""
    print(f"hub: error: {SECRETS.mask(one_line(message))}", file=sys.stderr, flush=True)
    return int(code)


def version_text() -> str:
    """``hub-core 0.1.0 (compiled with mypyc)`` or ``(pure Python)``."""
    build = "compiled with mypyc" if hub_core.COMPILED else "pure Python"
    return f"hub-core {hub_core.__version__} ({build})"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    The live view replaces ``sys.stderr`` with a proxy that prints above the
    display while it runs; looking it up per record follows that.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _MaskingFormatter(logging.Formatter):
    """Every log line (tracebacks included) passes through the secret mask."""

    def format(self, record: logging.LogRecord) -> str:
        return SECRETS.mask(super().format(record))


def configure_logging(level: str) -> None:
    """Log to stderr only (stdout belongs to --jsonl) at ``level``."""
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(
        _MaskingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _svg_file(text: str) -> str:
    """``--svg FILE``: a file in a directory that exists (checked before anything starts)."""
    import os.path

    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no such directory: {folder}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a directory: name a file, e.g. {text}/hub.svg")
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


# -- parser --------------------------------------------------------------------------
def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit():
        raise argparse.ArgumentTypeError(f"not I/N (e.g. 1/3): {text!r}")
    i, n = int(index), int(count)
    if n < 1 or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"I must be 1..N and N at least 1, got {text}")
    return i, n


def shard_names(names: list[str], index: int, count: int) -> list[str]:
    """The names shard ``index`` of ``count`` owns: every ``count``-th by sorted name,
    starting at ``index`` (1-based), so each name has exactly one owner."""
    return [name for k, name in enumerate(sorted(names)) if k % count == index - 1]


def build_parser() -> argparse.ArgumentParser:
    """The ``hub`` argument parser (every command and option)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="log verbosity on stderr (default: warning)",
    )
    parser = argparse.ArgumentParser(
        prog="hub",
        description="Exchange Connection Hub: connect to exchanges, watch and export market data.",
        parents=[common],
    )
    parser.add_argument("--version", action="store_true", help="print the version and build")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "plugins", parents=[common], help="list discovered plugins and their protocols"
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")

    p = sub.add_parser("check", parents=[common], help="validate a hub TOML config")
    p.add_argument("config", metavar="FILE", help="the hub.toml to check")

    def add_session_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--jsonl",
            action="store_true",
            help="write every event as one JSON object a line on stdout instead of the live view",
        )
        p.add_argument(
            "--duration",
            type=_positive_float,
            metavar="S",
            help="stop cleanly after S seconds (default: until Ctrl-C / SIGTERM)",
        )
        p.add_argument(
            "--metrics-port",
            type=_port,
            metavar="P",
            help="serve Prometheus metrics on http://127.0.0.1:P/metrics (0: any free port)",
        )
        p.add_argument(
            "--svg",
            type=_svg_file,
            metavar="FILE",
            help="on exit, save the last frame of the live view as an SVG image",
        )

    p = sub.add_parser(
        "run", parents=[common], help="connect every exchange of a config and show its data"
    )
    p.add_argument("config", metavar="FILE", help="the hub.toml to run")
    add_session_options(p)
    p.add_argument(
        "--record",
        metavar="DIR",
        help="also write every tick to DBN v3 files, DIR/<exchange>/<YYYYMMDD-HH>.dbn.zst",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="run only every N-th [exchanges.*] entry starting at I (1-based, by name), "
        "so N hubs share one config",
    )

    p = sub.add_parser(
        "replay",
        parents=[common],
        help="publish recorded DBN files (hub run --record, Databento's) through a hub",
    )
    p.add_argument(
        "paths", nargs="+", metavar="FILE_OR_DIR", help="DBN files, or directories of them"
    )
    p.add_argument(
        "--speed",
        type=_positive_float,
        metavar="X",
        help="X times the recorded pace, by ts_recv (default: as fast as possible)",
    )
    p.add_argument(
        "--jsonl",
        action="store_true",
        help="write every event as one JSON object a line on stdout (as hub run --jsonl)",
    )

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="start every installed plugin's simulator on loopback and connect to them",
    )
    add_session_options(p)
    p.add_argument(
        "--plugins",
        metavar="A,B",
        help="only these plugins' simulators (default: every installed plugin)",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        metavar="N",
        help="events per second per symbol (default: each simulator's own)",
    )

    p = sub.add_parser("sim", parents=[common], help="run one plugin's simulator alone")
    p.add_argument("protocol", help="the protocol whose simulator to run (see `hub plugins`)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port to listen on (default: 0 = any)")
    p.add_argument("--symbols", metavar="A,B", help="comma-separated symbols to simulate")
    p.add_argument("--rate", type=_positive_float, metavar="N", help="events per second per symbol")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow listening on a non-loopback address",
    )
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--dialect",
        metavar="NAME",
        help="the venue dialect, for simulators that speak several (websocket: binance, ...)",
    )
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a simulator-specific option, passed to its serve() as a keyword (repeatable)",
    )

    p = sub.add_parser(
        "new-plugin",
        parents=[common],
        help="scaffold an installable hub-plugin-NAME distribution on the plugin kit",
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="the plugin's name: its protocol and entry point (e.g. acme-feed)",
    )
    p.add_argument(
        "--dir",
        default=".",
        metavar="DIR",
        help="where to create hub-plugin-NAME/ (default: the current directory)",
    )
    return parser


def _simulator_options(args: argparse.Namespace) -> dict[str, str]:
    """``--dialect`` and ``-o KEY=VALUE`` as keyword arguments for ``SimulatorSpec.serve``."""
    options: dict[str, str] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--option {item!r}: write KEY=VALUE, e.g. --option depth=10")
        options[key] = value
    if args.dialect:
        options["dialect"] = args.dialect
    return options


# -- commands ------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    """``hub plugins [--json]``."""
    from hub_core.cli.demo import simulators

    registry = ExchangeRegistry()
    infos = registry.discover()
    with_sim = set(simulators(registry))
    rows = []
    for info in infos:
        row = info.as_dict()
        row["simulators"] = [p for p in info.protocols if p in with_sim]
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return int(ExitCode.OK)
    if not rows:
        print("no hub plugins installed (e.g. pip install hub-plugin-ninjatrader)")
        return int(ExitCode.OK)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="hub plugins", title_justify="left")
    for col in ("name", "distribution", "version", "protocols", "simulator", "status"):
        table.add_column(col)
    for row in rows:
        status = "[green]enabled[/]" if row["enabled"] else f"[red]disabled[/]: {row['error']}"
        if row["enabled"] and row["error"]:
            status += f" [yellow]({row['error']})[/]"
        table.add_row(
            str(row["name"]),
            str(row["distribution"] or "-"),
            str(row["version"] or "-"),
            "; ".join(
                part
                for part in (
                    ", ".join(row["protocols"]),
                    "sinks: " + ", ".join(row["sinks"]) if row["sinks"] else "",
                )
                if part
            )
            or ("extends " + ", ".join(row["extends"]) if row["extends"] else "-"),
            ", ".join(row["simulators"]) or "-",
            status,
        )
    Console().print(table)
    return int(ExitCode.OK)


def cmd_check(args: argparse.Namespace) -> int:
    """``hub check FILE``: OK and a summary, or one error line naming the key (exit 2)."""
    from hub_core.cli.checks import summary_lines, validate_config

    try:
        checked = validate_config(args.config)
    except HubError as exc:
        return error(str(exc), ExitCode.CONFIG)
    print(f"OK: {checked.path}")
    for line in summary_lines(checked):
        print(f"  {line}")
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return int(ExitCode.OK)


def remember_secrets(config: HubConfig) -> None:
    """Register every secret of ``config`` with the mask the CLI's output passes through."""
    for ex in config.exchanges.values():
        for endpoint in ex.endpoints:
            SECRETS.add(*endpoint_secrets(endpoint))
        _remember_credentials(ex.credentials)
    for sc in config.sinks.values():
        SECRETS.add(*endpoint_secrets(sc.url))
        _remember_credentials(sc.credentials)


def _remember_credentials(creds: Credentials) -> None:
    for field in ("password", "api_key", "api_secret"):
        value = getattr(creds, field)
        if value is not None:
            SECRETS.add(value.get_secret_value())


Builder = Callable[[TaskGroup], Awaitable[ExchangeHub]]
"""Builds the session's hub inside its task group (the demo starts simulators there)."""


def _run_session(session: Session, build: Builder) -> int:
    try:
        code = anyio.run(session.run, build)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
    except (Exception, BaseExceptionGroup) as exc:
        err = first_error(exc)
        if isinstance(err, KeyboardInterrupt):
            return int(ExitCode.OK)
        if isinstance(err, ConfigError | PluginError):
            return error(fatal_message(exc), ExitCode.CONFIG)
        log.debug("fatal error", exc_info=exc)
        return error(fatal_message(exc), ExitCode.FATAL)
    if session.fatal:
        return error(session.fatal, ExitCode.FATAL)
    return int(code)


def cmd_run(args: argparse.Namespace) -> int:
    """``hub run FILE``: connect every exchange and show or export its events."""
    from hub_core.cli.checks import validate_config

    try:
        checked = validate_config(args.config)
    except HubError as exc:
        return error(str(exc), ExitCode.CONFIG)
    if not checked.config.exchanges:
        return error(
            f"{checked.path}: no [exchanges.NAME] tables: add at least one connection",
            ExitCode.CONFIG,
        )
    if args.shard is not None:
        index, count = args.shard
        names = list(checked.config.exchanges)
        mine = shard_names(names, index, count)
        if not mine:
            return error(
                f"--shard {index}/{count}: this shard owns none of the {len(names)} "
                f"[exchanges.*] entries of {checked.path}: use at most {len(names)} shards",
                ExitCode.CONFIG,
            )
        owned = {name: checked.config.exchanges[name] for name in mine}
        checked.config = checked.config.model_copy(update={"exchanges": owned})
        log.info("shard %d/%d: %s", index, count, ", ".join(mine))
    for warning in checked.warnings:
        log.warning("%s", warning)
    remember_secrets(checked.config)
    if args.record is not None:
        from hub_core.recording import Recorder

        try:
            Recorder.check_directory(args.record)
        except OSError as exc:
            return error(f"--record {args.record}: cannot write there: {exc}", ExitCode.CONFIG)
    hub = ExchangeHub(registry=checked.registry, config=checked.config, tune_gc=True)

    async def build(tg: TaskGroup) -> ExchangeHub:
        if args.record is not None:
            hub.record(args.record)  # before the first connection: nothing is missed
        return hub

    options = SessionOptions(
        title=f"hub run {checked.path}",
        jsonl=args.jsonl,
        duration=args.duration,
        metrics_port=args.metrics_port,
        svg=args.svg,
    )
    return _run_session(Session(options), build)


def cmd_demo(args: argparse.Namespace) -> int:
    """``hub demo``: every installed simulator on loopback, one hub connected to all."""
    from hub_core.cli.demo import LOOPBACK, parse_list, start_demo_simulators

    options = SessionOptions(
        title="hub demo",
        jsonl=args.jsonl,
        duration=args.duration,
        metrics_port=args.metrics_port,
        svg=args.svg,
    )
    session = Session(options)

    allow = parse_list(args.plugins)

    async def build(tg: TaskGroup) -> ExchangeHub:
        registry = ExchangeRegistry(allow=allow)
        registry.discover()
        sims, config = await start_demo_simulators(tg, registry, rate=args.rate)
        names = ", ".join(f"{s.protocol} {s.endpoint}" for s in sims)
        options.title = f"hub demo: simulators on {LOOPBACK} ({names})"
        return ExchangeHub(registry=registry, config=config, tune_gc=True)

    return _run_session(session, build)


def cmd_sim(args: argparse.Namespace) -> int:
    """``hub sim PROTOCOL``: one simulator; first stdout line ``listening on HOST:PORT``."""
    from hub_core.cli.demo import (
        is_loopback,
        parse_list,
        simulators,
        unknown_simulator_message,
    )

    if not is_loopback(args.host) and not args.allow_remote:
        return error(
            f"refusing to listen on {args.host}: it is not a loopback address and the "
            "simulator serves anyone who connects; use --host 127.0.0.1, or pass "
            "--allow-remote to expose it",
            ExitCode.CONFIG,
        )
    registry = ExchangeRegistry()
    registry.discover()
    spec = simulators(registry).get(args.protocol)
    venue_options: dict[str, str] = {}
    if spec is None and (venue := registry.venue(args.protocol)) is not None:
        # `hub sim binance`: the venue's plugin, with its options (--dialect binance)
        owner, venue_options = venue
        if (spec := simulators(registry).get(owner)) is not None:
            args.protocol = owner
    if spec is None:
        return error(unknown_simulator_message(args.protocol, registry), ExitCode.CONFIG)
    symbols = parse_list(args.symbols)
    if symbols is not None and not symbols:
        return error("--symbols: give at least one symbol, e.g. --symbols ES,NQ", ExitCode.CONFIG)

    try:
        sim_options = venue_options | _simulator_options(args)
    except ValueError as exc:
        return error(str(exc), ExitCode.CONFIG)

    started: list[bool] = []  # non-empty once it listens: a failure before is a bad option

    async def serve() -> None:
        from hub_core.cli.demo import start_simulator
        from hub_core.cli.session import watch_signals

        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, stop, tg.cancel_scope, name="hub-signals")
            sim = await start_simulator(
                tg,
                args.protocol,
                spec,
                host=args.host,
                port=args.port,
                symbols=symbols,
                rate=args.rate,
                options=sim_options,
            )
            started.append(True)
            print(f"listening on {sim.endpoint}", flush=True)
            print(_paste_block(spec, sim.endpoint, sim.symbols, sim_options), file=sys.stderr)
            log.info("%s simulator: symbols %s", args.protocol, ", ".join(sim.symbols))
            with anyio.move_on_after(args.duration):
                await stop.wait()
            tg.cancel_scope.cancel()

    try:
        anyio.run(serve)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
    except (Exception, BaseExceptionGroup) as exc:
        err = first_error(exc)
        if isinstance(err, KeyboardInterrupt):
            return int(ExitCode.OK)
        log.debug("simulator failed", exc_info=exc)
        if not started and isinstance(err, ValueError | TypeError):
            # the simulator refused an option (-o KEY=VALUE, --dialect) before listening
            return error(str(err), ExitCode.CONFIG)
        return error(fatal_message(exc), ExitCode.FATAL)
    return int(ExitCode.OK)


def _paste_block(
    spec: SimulatorSpec, endpoint: str, symbols: list[str], options: dict[str, str]
) -> str:
    """What to write in hub.toml to connect to this simulator (stderr, so stdout stays
    the one ``listening on`` line scripts read)."""
    from hub_core.cli.demo import config_block

    try:
        if spec.sim_config is not None:
            cfg = spec.sim_config(endpoint, list(symbols), dict(options))
        else:
            cfg = spec.demo_config(endpoint, list(symbols))
    except Exception as exc:  # a plugin's config never stops its simulator
        log.debug("the simulator's config raised %r", exc)
        return ""
    return "# to connect, paste into hub.toml:\n" + config_block(cfg)


def cmd_new_plugin(args: argparse.Namespace) -> int:
    """``hub new-plugin NAME [--dir DIR]``: the files written, then the next steps; an
    invalid NAME or an existing directory is one error line (exit 2)."""
    from pathlib import Path

    from hub_core.cli.new_plugin import TargetExists, next_steps, plugin_names, scaffold

    try:
        names = plugin_names(args.name)
        target = scaffold(names, Path(args.dir).absolute())
    except (ValueError, TargetExists) as exc:
        return error(str(exc), ExitCode.CONFIG)
    except OSError as exc:
        return error(f"cannot write the plugin: {exc}", ExitCode.FATAL)
    print(f"created {names.dist} in {target}")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(target)}")
    print(f"protocol and entry point {names.name!r}, import package {names.module}; next:")
    for step in next_steps(names, target):
        print(f"  {step}")
    return int(ExitCode.OK)


def cmd_replay(args: argparse.Namespace) -> int:
    """``hub replay FILE_OR_DIR... [--speed X] [--jsonl]``: the files' ticks through a hub's
    bus; ``--jsonl`` writes them on stdout, else a summary; a progress bar on a terminal."""
    from hub_core.cli.replaying import run_replay

    return run_replay(args.paths, speed=args.speed, jsonl=args.jsonl)


COMMANDS = {
    "plugins": cmd_plugins,
    "check": cmd_check,
    "run": cmd_run,
    "replay": cmd_replay,
    "demo": cmd_demo,
    "sim": cmd_sim,
    "new-plugin": cmd_new_plugin,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hub`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else int(ExitCode.CONFIG)
    configure_logging(getattr(args, "log_level", "warning"))
    if args.version:
        print(version_text())
        return int(ExitCode.OK)
    if args.command is None:
        parser.print_help(sys.stderr)
        return int(ExitCode.CONFIG)
    return COMMANDS[args.command](args)
