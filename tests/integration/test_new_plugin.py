"""``hub new-plugin`` end to end, as a vendor would use it: a fresh venv gets hub-core
from this repository (the pure-Python build, to keep it quick) and runs ``hub
new-plugin acme-feed`` from that install (so the templates must ship in the package);
the generated plugin is then installed as it is, and in that venv its own tests pass
(the conformance suite included, nothing skipped), ``hub plugins`` lists it, ``hub sim
acme-feed`` listens and ``hub demo --plugins acme-feed`` streams its trades. The
generated code is also ruff and mypy --strict clean, and within its size budget."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NAME = "acme-feed"
PLUGIN_LINE_BUDGET = 400
"""Non-blank, non-comment lines (docstrings count) under the generated src/."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def source_lines(src: Path) -> int:
    """Lines under ``src`` (every ``*.py``) that are neither blank nor only a comment."""
    return sum(
        1
        for path in src.rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    )


def _env() -> dict[str, str]:
    # the fresh venv must see only what is installed in it: no source tree on the path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(cmd: list[str], cwd: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        cmd,
        cwd=cwd,
        env=_env() | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert res.returncode == 0, (
        f"{' '.join(cmd)} exited {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    )
    return res


def test_a_generated_plugin_installs_passes_its_tests_and_runs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120)
    py, hub = str(venv / "bin" / "python"), str(venv / "bin" / "hub")
    pip = [py, "-m", "pip", "install", "--quiet"]
    # hub-core's build backend, for the --no-build-isolation install below
    run([*pip, "setuptools>=77", "wheel"], tmp_path, 300)
    # a copy, so the build leaves nothing in this checkout
    core = tmp_path / "core"
    shutil.copytree(
        REPO / "core",
        core,
        ignore=shutil.ignore_patterns("build", "build-pure", "*.egg-info", "__pycache__", "*.so"),
    )
    run([*pip, "--no-build-isolation", str(core)], tmp_path, 600, HUB_CORE_PURE="1")

    made = run([hub, "new-plugin", NAME, "--dir", str(tmp_path)], tmp_path, 60)
    project = tmp_path / "hub-plugin-acme-feed"
    assert f"created hub-plugin-acme-feed in {project}" in made.stdout
    assert "src/hub_plugin_acme_feed/connection.py" in made.stdout

    lines = source_lines(project / "src")
    assert lines <= PLUGIN_LINE_BUDGET, f"the generated plugin has {lines} lines of code"

    # as generated, ruff and mypy --strict clean under its own pyproject settings
    run([sys.executable, "-m", "ruff", "check", "."], project, 60)
    run([sys.executable, "-m", "ruff", "format", "--check", "."], project, 60)
    run(
        [sys.executable, "-m", "mypy", "src", "tests"],
        project,
        300,
        MYPYPATH=str(REPO / "core/src"),
    )

    # installed as a vendor would (pip builds it in isolation), with its test extras
    run([*pip, f"{project}[test]"], tmp_path, 600)
    tests = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, 600)
    summary = tests.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 25  # codec tests + every suite case

    listed = json.loads(run([hub, "plugins", "--json"], tmp_path, 60).stdout)
    row = next(r for r in listed if r["name"] == NAME)
    assert row["enabled"] and row["distribution"] == "hub-plugin-acme-feed", row
    assert row["protocols"] == [NAME] and row["simulators"] == [NAME], row
    assert NAME in run([hub, "plugins"], tmp_path, 60).stdout

    sim = run([hub, "sim", NAME, "--duration", "2"], tmp_path, 60)
    assert sim.stdout.splitlines()[0].startswith("listening on 127.0.0.1:"), sim.stdout
    assert f'protocol = "{NAME}"' in sim.stderr  # the table to paste into hub.toml

    demo = run([hub, "demo", "--duration", "3", "--plugins", NAME, "--jsonl"], tmp_path, 120)
    events = [json.loads(line) for line in demo.stdout.splitlines()]
    trades = [e for e in events if e["type"] == "Trade"]
    assert trades and {e["exchange"] for e in trades} == {NAME}
    assert {e["symbol"] for e in trades} == {"AAA", "BBB"}
    states = [e["state"] for e in events if e["type"] == "ConnectionStateChanged"]
    assert "connected" in states and states[-1] == "closed", states


def test_the_budget_counts_code_and_docstrings_but_not_comments(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('"""Doc."""\n\n# a comment\nx = 1  # why\n    \n')
    assert source_lines(tmp_path) == 2
