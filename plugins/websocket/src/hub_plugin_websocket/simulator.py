"""``python -m hub_plugin_websocket.simulator``: ``hub sim websocket`` under its old name.

The venues live in ``hub_plugin_websocket.simulators`` (Binance, Coinbase and Kraken
on one base); this module re-exports what scripts import from here and what the
plugin's ``SimulatorSpec`` runs. Its command line is not a second one: ``main`` hands
the arguments to the ``hub`` command (``hub sim websocket ARGS``), spelling the old
``--replay FILE`` and ``--replay-speed S`` as ``-o replay=FILE`` and
``-o replay_speed=S``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

from hub_core.simulation import LOOPBACK_HOSTS
from hub_plugin_websocket.simulators import (
    DEFAULT_SYMBOLS,
    MALFORMED,
    BinanceSimulator,
    fmt8,
    serve_simulator,
    simulator_options,
)

__all__ = [
    "DEFAULT_SYMBOLS",
    "LOOPBACK_HOSTS",
    "MALFORMED",
    "BinanceSimulator",
    "fmt8",
    "main",
    "serve_simulator",
    "simulator_options",
]

_PROG = "python -m hub_plugin_websocket.simulator"
_RENAMED = {"--replay": "replay", "--replay-speed": "replay_speed"}


def _hub_command() -> Callable[[list[str]], int]:
    """The ``hub`` command (hub-core's console script)."""
    (script,) = entry_points(group="console_scripts", name="hub")
    command: Callable[[list[str]], int] = script.load()
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """``hub sim websocket ARGS`` (``--dialect``, ``--symbols``, ``--duration``...); exits
    with its code when it fails (``SystemExit``), returns 0 otherwise."""
    given = list(sys.argv[1:] if argv is None else argv)
    args: list[str] = []
    while given:
        arg = given.pop(0)
        flag, eq, value = arg.partition("=")
        if flag not in _RENAMED:
            args.append(arg)
            continue
        if not eq:
            value = given.pop(0) if given else ""
        if flag == "--replay" and not Path(value).is_file():
            print(f"{_PROG}: error: --replay: no such file: {value}", file=sys.stderr)
            raise SystemExit(2)
        args += ["-o", f"{_RENAMED[flag]}={value}"]
    code = _hub_command()(["sim", "websocket", *args])
    if code:
        raise SystemExit(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
