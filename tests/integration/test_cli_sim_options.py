"""`hub sim` passes --dialect and --option to the plugin's simulator."""

import os
import subprocess
import sys

import pytest


def hub(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@pytest.mark.parametrize("dialect", ["binance", "binance-futures"])
def test_websocket_simulator_takes_a_dialect(dialect: str) -> None:
    proc = hub("sim", "websocket", "--dialect", dialect, "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("listening on 127.0.0.1:")


def test_unknown_dialect_is_a_clear_error() -> None:
    proc = hub("sim", "websocket", "--dialect", "no-such-venue", "--duration", "1")
    assert proc.returncode != 0
    assert "no-such-venue" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_malformed_option() -> None:
    proc = hub("sim", "ninjatrader", "-o", "novalue")
    assert proc.returncode == 2
    assert "KEY=VALUE" in proc.stderr


def test_ninjatrader_simulator_options_are_converted_from_text() -> None:
    proc = hub(
        "sim",
        "ninjatrader",
        "-o",
        "users=alice:Secret1,bob:pw2",
        "-o",
        "depth_levels=3",
        "--duration",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("listening on 127.0.0.1:")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("depth_levels=many", "option depth_levels='many': expected a whole number"),
        ("users=nobody", "expected USER:PASSWORD"),
        ("colour=blue", "the ninjatrader simulator has no option 'colour'"),
    ],
)
def test_ninjatrader_simulator_refuses_a_bad_option_in_one_line(option: str, message: str) -> None:
    proc = hub("sim", "ninjatrader", "-o", option, "--duration", "1")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_a_dialect_for_a_plugin_without_dialects_exits_2() -> None:
    proc = hub("sim", "ninjatrader", "--dialect", "binance", "--duration", "1")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no option 'dialect'" in proc.stderr


@pytest.mark.parametrize("protocol", ["ninjatrader", "fix", "websocket", "databento"])
def test_a_port_in_use_names_the_port_in_one_line(protocol: str) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = hub("sim", protocol, "--port", str(port), "--duration", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "could not listen" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert "--port" in lines[0]


def test_a_venue_name_runs_its_plugins_simulator() -> None:
    proc = hub("sim", "binance-futures", "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("listening on 127.0.0.1:")


@pytest.mark.parametrize(
    ("args", "protocol"),
    [
        (["ninjatrader"], "ninjatrader"),
        (["fix"], "fix"),
        (["websocket"], "websocket"),
        (["websocket", "--dialect", "coinbase"], "websocket"),
        (["kraken"], "websocket"),
        (["binance-futures"], "websocket"),
        (["databento"], "databento"),
    ],
)
def test_hub_sim_prints_a_config_that_connects(
    args: list[str], protocol: str, tmp_path: pytest.TempPathFactory
) -> None:
    """The block ``hub sim`` prints on stderr, pasted as it is, gets data from it."""
    import json
    import tomllib
    from pathlib import Path

    sim = subprocess.Popen(
        [sys.executable, "-m", "hub_core.cli", "sim", *args, "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None and sim.stderr is not None
        assert sim.stdout.readline().startswith("listening on 127.0.0.1:")
        block: list[str] = []
        for line in sim.stderr:
            if not line.strip() and block:
                break
            if line.startswith("[exchanges.sim]") or block:
                block.append(line)
        text = "".join(block)
        table = tomllib.loads(text)["exchanges"]["sim"]
        assert table["protocol"] == protocol and table["symbols"], text
        cfg = Path(str(tmp_path)) / "hub.toml"
        cfg.write_text(text)
        # the Databento block takes its key from DATABENTO_API_KEY, as the README says
        env = {**os.environ, "DATABENTO_API_KEY": "db-" + "s1m" * 9 + "key00"}
        run = hub("run", str(cfg), "--jsonl", "--duration", "4", timeout=40, env=env)
        assert run.returncode == 0, run.stderr
        types = {json.loads(line)["type"] for line in run.stdout.splitlines()}
        assert types & {"Trade", "Quote", "BookUpdate", "BookSnapshot"}, run.stdout[:500]
    finally:
        sim.terminate()
        sim.communicate(timeout=20)
