"""The conformance suite proves what it claims: the line protocol plugin passes every
case, and each deliberately broken variant of it (tests/core/conformance_mutants.py)
fails the case meant to catch it, for the reason that case gives.

The broken variants' cases run once, in one pytest subprocess (they must fail, so they
cannot run in this session); its JUnit report says which failed and why.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conformance_mutants import CAUGHT_BY, LineConformance

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests/core/conformance_mutants.py"


class TestLineProtoConformance(LineConformance):
    """The good plugin: every case passes (the optional faults included)."""


@pytest.fixture(scope="module")
def mutant_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """``{"Class::case": (outcome, failure text)}`` for every pair in ``CAUGHT_BY``."""
    report = tmp_path_factory.mktemp("mutants") / "report.xml"
    ids = sorted({f"{MODULE}::{cls}::{case}" for cls, case, _ in CAUGHT_BY})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *ids, "-q", "-p", "no:randomly", f"--junitxml={report}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert report.exists(), f"the mutant run wrote no report:\n{done.stdout}\n{done.stderr}"
    results: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        key = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome, text = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                text = f"{found.get('message', '')}\n{found.text or ''}"
                break
        results[key] = outcome, text
    return results


@pytest.mark.parametrize(
    ("mutant", "case", "reason"),
    CAUGHT_BY,
    ids=[f"{m.removeprefix('Test')}-{c.removeprefix('test_')}" for m, c, _ in CAUGHT_BY],
)
def test_the_suite_catches_the_broken_plugin(
    mutant_reports: dict[str, tuple[str, str]], mutant: str, case: str, reason: str
) -> None:
    outcome, text = mutant_reports.get(f"{mutant}::{case}", ("not run", ""))
    assert outcome == "failed", f"{mutant}: {case} {outcome}; it must fail\n{text[-2000:]}"
    assert reason in text, f"{mutant}: {case} failed, but not because {reason!r}:\n{text[-2000:]}"
