"""``hub new-plugin``: names, the files it writes, refusals, and what the generated code
may import. tests/integration/test_new_plugin.py installs what it writes in a fresh venv
and runs it (its tests, ``hub plugins``, ``hub sim``, ``hub demo``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import hub_core
from hub_core.cli.commands import main
from hub_core.cli.new_plugin import (
    FILES,
    MAX_NAME_LEN,
    core_requirement,
    generate,
    plugin_names,
)

KIT_MODULES = {"hub_core.plugin", "hub_core.simulation", "hub_core.testing"}


def test_the_names_of_a_plugin() -> None:
    names = plugin_names("acme-feed")
    assert (names.name, names.dist, names.module) == (
        "acme-feed",
        "hub-plugin-acme-feed",
        "hub_plugin_acme_feed",
    )
    assert (names.cls, names.env) == ("AcmeFeed", "ACME_FEED")
    under = plugin_names("acme_feed2")
    assert (under.dist, under.module, under.cls) == (
        "hub-plugin-acme-feed2",
        "hub_plugin_acme_feed2",
        "AcmeFeed2",
    )


@pytest.mark.parametrize(
    "bad",
    ["Acme", "2acme", "acme--feed", "acme-", "-acme", "ac me", "acme.feed", "", "é", "a" * 21],
)
def test_a_name_that_is_not_lowercase_words_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters and digits"):
        plugin_names(bad)


def test_a_name_with_the_distribution_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="without the hub-plugin- prefix"):
        plugin_names("hub-plugin-acme")


@pytest.mark.parametrize(
    ("version", "requirement"),
    [("0.1.0", "hub-core~=0.1"), ("1.12.3", "hub-core~=1.12"), ("2.0", "hub-core~=2.0")],
)
def test_the_core_requirement_is_a_compatible_range(version: str, requirement: str) -> None:
    assert core_requirement(version) == requirement


def test_the_generated_pyproject_depends_on_this_core() -> None:
    files = generate(plugin_names("acme-feed"))
    major, minor = hub_core.__version__.split(".")[:2]
    assert f'"hub-core~={major}.{minor}"' in files["pyproject.toml"]
    assert 'acme-feed = "hub_plugin_acme_feed"' in files["pyproject.toml"]  # the entry point


def test_every_template_is_used_and_every_placeholder_filled() -> None:
    shipped = {
        p.name for p in (resources.files("hub_core.cli") / "templates").iterdir() if p.is_file()
    }
    assert shipped == {tmpl for _, tmpl in FILES if tmpl}
    for name in ("x", "acme-feed", "a_b-c"):
        for path, text in generate(plugin_names(name)).items():
            assert "{{" not in text and "}}" not in text, path


def _kit_imports_only(text: str) -> list[str]:
    outside = []
    for node in ast.walk(ast.parse(text)):
        mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module]
        outside += [m for m in mods if m.startswith("hub_core") and m not in KIT_MODULES]
    return outside


def test_the_generated_code_imports_only_the_kit() -> None:
    for path, text in generate(plugin_names("acme-feed")).items():
        if path.endswith(".py"):
            assert not _kit_imports_only(text), f"{path} imports {_kit_imports_only(text)}"


@pytest.mark.parametrize("name", ["x", "acme-feed", "abcdefghi-klmnopqrst", "a" * MAX_NAME_LEN])
def test_the_generated_code_is_ruff_clean_for_short_and_long_names(
    name: str, tmp_path: Path
) -> None:
    assert main(["new-plugin", name, "--dir", str(tmp_path)]) == 0
    project = tmp_path / plugin_names(name).dist
    for args in (["check", "."], ["format", "--check", "."]):
        res = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, f"ruff {' '.join(args)}:\n{res.stdout}{res.stderr}"


def test_new_plugin_writes_the_distribution_and_says_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-plugin", "acme-feed", "--dir", str(tmp_path / "made")]) == 0
    out = capsys.readouterr().out
    project = tmp_path / "made" / "hub-plugin-acme-feed"
    written = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert written == sorted(p.format(module="hub_plugin_acme_feed") for p, _ in FILES)
    for rel in written:
        assert f"  {rel}\n" in out  # every file is listed
    assert "hub sim acme-feed" in out and "hub demo --plugins acme-feed" in out
    assert "pip install -e '.[test]'" in out
    assert not [p for p in (tmp_path / "made").iterdir() if p.name.startswith(".")]  # no staging


def test_an_existing_directory_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "hub-plugin-acme-feed"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    assert main(["new-plugin", "acme-feed", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hub: error: ") and "already exists" in err
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub-plugin-acme-feed"]


def test_a_bad_name_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-plugin", "Acme", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plugin name 'Acme'" in err
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_be_written_is_a_fatal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["new-plugin", "acme-feed", "--dir", str(blocker / "sub")]) == 1
    assert "cannot write the plugin" in capsys.readouterr().err


def test_writing_a_plugin_walks_through_every_generated_file() -> None:
    guide = (Path(__file__).resolve().parents[2] / "sdk-docs" / "writing-a-plugin.md").read_text()
    step0 = guide.split("## 0. ", 1)[1].split("\n## 1. ", 1)[0]
    assert "hub new-plugin" in guide.split("## 1. ", 1)[0]
    for path, _ in FILES:
        if path.endswith((".py", ".toml", ".md")):
            shown = path.replace("{module}", "...")
            assert f"`{shown}`" in step0, f"{shown} is not described in step 0"
