"""Every example runs as shown, against the simulators on loopback."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--duration", "2", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_basic_usage() -> None:
    out = run("basic_usage.py")
    assert "status: {'ninjatrader': True}" in out
    assert "quote ES" in out or "quote NQ" in out
    trades = int(out.split("trades=")[1].split()[0])
    assert trades > 0


def test_ninjatrader_integration() -> None:
    out = run("ninjatrader_integration.py")
    assert "state  connected" in out
    assert "gap " in out  # the dropped connection left a blind window
    stats = next(x for x in out.splitlines() if x.startswith("es_feed:"))
    assert "reconnects=1" in stats and "gaps=1" in stats


@pytest.mark.parametrize("venue", ["cme_futures", "cbot_futures"])
def test_multi_exchange(venue: str) -> None:
    out = run("multi_exchange.py")
    assert "'cme_futures': True" in out and "'cbot_futures': True" in out
    line = next(x for x in out.splitlines() if x.startswith(f"{venue}:"))
    assert int(line.split("trades=")[1].split()[0]) > 0


def test_readme_example_runs_as_shown(tmp_path: Path) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "{ExchangeId('ninjatrader'): True}" in proc.stdout
    assert "quote ES" in proc.stdout or "quote NQ" in proc.stdout
    assert "ProcessorStats(trades_processed=" in proc.stdout


def test_readme_config_passes_hub_check(tmp_path: Path) -> None:
    import os

    readme = (EXAMPLES.parent / "README.md").read_text()
    toml = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "hub.toml"
    path.write_text(toml)
    env = {**os.environ, "NT_USER": "trader", "NT_PASSWORD": "not-in-output"}
    proc = subprocess.run(
        [sys.executable, "-m", "hub_core.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not-in-output" not in proc.stdout + proc.stderr


def test_readme_simulator_config_works_as_copied(tmp_path: Path) -> None:
    """The README's `hub sim` commands and sim.toml, verbatim: every connection gets data,
    with nothing set in the environment."""
    import json
    import os
    import shlex

    readme = (EXAMPLES.parent / "README.md").read_text()
    commands = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    sims = [shlex.split(c.rstrip(" &")) for c in commands if c.startswith("hub sim")]
    toml = "# sim.toml" + readme.split("```toml\n# sim.toml", 1)[1].split("```", 1)[0]
    assert len(sims) == 3
    path = tmp_path / "sim.toml"
    path.write_text(toml)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NT_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hub_core.cli", *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for argv in sims
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().startswith("listening on 127.0.0.1:")
        run = subprocess.run(
            [sys.executable, "-m", "hub_core.cli", "run", str(path), "--jsonl", "--duration", "5"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    finally:
        for p in procs:
            p.terminate()
            p.communicate(timeout=20)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    data = {e["exchange"] for e in events if e["type"] in ("Trade", "Quote", "BookUpdate")}
    assert data == {"es_sim", "binance_sim", "fix_sim"}, run.stderr[-2000:]
