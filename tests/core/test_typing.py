"""The application API is typed exactly: mypy --strict accepts the correct uses in
``typing_cases/accepted.py`` and rejects every line marked ``# rejected`` in
``typing_cases/rejected.py`` (and nothing else there), against the installed hub_core."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

CASES = Path(__file__).parent / "typing_cases"


def _mypy(tmp_path: Path, name: str) -> dict[int, list[str]]:
    """mypy --strict on one case file, run outside the repository so the installed
    package (not the source tree) is what gets checked; errors by line."""
    target = tmp_path / name
    shutil.copy(CASES / name, target)
    out, err, status = mypy_api.run(
        [
            "--strict",
            "--no-incremental",
            "--config-file",
            "",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            str(target),
        ]
    )
    assert not err.strip(), err
    errors: dict[int, list[str]] = {}
    for line in out.splitlines():
        m = re.match(rf"(?:.*/)?{re.escape(name)}:(\d+): error: (.*)", line)
        if m:
            errors.setdefault(int(m.group(1)), []).append(m.group(2))
    # mypy's own verdict agrees with what was parsed (so a parse miss cannot pass)
    assert (status == 0) == (not errors), out
    return errors


def test_correct_uses_type_check(tmp_path: Path) -> None:
    errors = _mypy(tmp_path, "accepted.py")
    assert errors == {}, errors


def test_wrong_uses_are_rejected_line_by_line(tmp_path: Path) -> None:
    source = (CASES / "rejected.py").read_text().splitlines()
    expected = {i for i, text in enumerate(source, 1) if re.search(r"\S.*# rejected:", text)}
    assert len(expected) >= 7
    errors = _mypy(tmp_path, "rejected.py")
    assert set(errors) == expected, {
        "not rejected": sorted(expected - set(errors)),
        "unexpected errors": {n: errors[n] for n in set(errors) - expected},
    }
