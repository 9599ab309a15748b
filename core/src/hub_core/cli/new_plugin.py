"""``hub new-plugin NAME [--dir DIR]``: scaffold an installable ``hub-plugin-NAME``.

The templates (``templates/*.tmpl``, package data of hub-core) are a complete plugin
for a small newline-delimited text protocol, written only against the plugin kit
(``hub_core.plugin``, ``hub_core.simulation``, ``hub_core.testing``): pyproject with
the entry point and a compatible ``hub-core`` range, README, options model, sans-I/O
codec, connection, simulator, factory, and tests that include the conformance suite.
As generated it installs, its tests pass, and ``hub sim NAME`` / ``hub demo`` run it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import hub_core

MAX_NAME_LEN = 20
"""Longest NAME: the templates keep every generated line within 100 columns for it."""
_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

FILES: tuple[tuple[str, str], ...] = (
    ("pyproject.toml", "pyproject.toml.tmpl"),
    ("README.md", "README.md.tmpl"),
    (".gitignore", "gitignore.tmpl"),
    ("src/{module}/__init__.py", "__init__.py.tmpl"),
    ("src/{module}/factory.py", "factory.py.tmpl"),
    ("src/{module}/options.py", "options.py.tmpl"),
    ("src/{module}/codec.py", "codec.py.tmpl"),
    ("src/{module}/connection.py", "connection.py.tmpl"),
    ("src/{module}/simulator.py", "simulator.py.tmpl"),
    ("src/{module}/py.typed", ""),
    ("tests/conftest.py", "conftest.py.tmpl"),
    ("tests/test_codec.py", "test_codec.py.tmpl"),
    ("tests/test_conformance.py", "test_conformance.py.tmpl"),
)
"""Every generated file (its path, ``{module}`` filled in) and its template ("" = empty)."""


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of one plugin's name the templates use."""

    name: str
    """As given: the entry-point name, the ``protocol``, ``hub sim NAME``."""
    dist: str
    """The distribution, ``hub-plugin-NAME`` (``_`` written ``-``); also its directory."""
    module: str
    """The import package, ``hub_plugin_NAME`` (``-`` written ``_``)."""
    cls: str
    """The class-name prefix (``acme-feed`` -> ``AcmeFeed``)."""
    env: str
    """The prefix of the README's credential variables (``ACME_FEED``)."""


def plugin_names(name: str) -> PluginNames:
    """The names of plugin ``name``; ``ValueError`` (one line, says what to type) if
    ``name`` is not a lowercase word with ``-`` or ``_`` between its parts."""
    if name.startswith(("hub-plugin-", "hub_plugin_")):
        raise ValueError(f"plugin name {name!r}: give it without the hub-plugin- prefix")
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME_LEN:
        raise ValueError(
            f"plugin name {name!r}: use lowercase letters and digits, starting with a letter, "
            f"parts joined by '-' or '_', at most {MAX_NAME_LEN} characters (e.g. acme-feed)"
        )
    parts = re.split(r"[-_]", name)
    return PluginNames(
        name=name,
        dist="hub-plugin-" + "-".join(parts),
        module="hub_plugin_" + "_".join(parts),
        cls="".join(p.capitalize() for p in parts),
        env="_".join(parts).upper(),
    )


def core_requirement(version: str = hub_core.__version__) -> str:
    """``hub-core~=X.Y`` for the running core (``0.1.0`` -> ``hub-core~=0.1``): any later
    compatible release of the kit, never one exact version."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return f"hub-core~={match[1]}.{match[2]}" if match else "hub-core"


def render(template: str, names: PluginNames) -> str:
    """``template`` with every ``{{key}}`` filled in; a key it does not know is a bug of
    the template and raises ``KeyError``."""
    values = {
        "name": names.name,
        "dist": names.dist,
        "module": names.module,
        "Class": names.cls,
        "env": names.env,
        "core_requirement": core_requirement(),
    }
    return _PLACEHOLDER.sub(lambda m: values[m[1]], template)


def read_template(name: str) -> str:
    """The text of one template, from hub-core's package data."""
    return (resources.files("hub_core.cli") / "templates" / name).read_text(encoding="utf-8")


def generate(names: PluginNames) -> dict[str, str]:
    """Every generated file: relative path -> text."""
    return {
        path.format(module=names.module): render(read_template(tmpl), names) if tmpl else ""
        for path, tmpl in FILES
    }


class TargetExists(FileExistsError):
    """The plugin's directory is already there: ``hub new-plugin`` never overwrites."""


def scaffold(names: PluginNames, parent: Path) -> Path:
    """Write the plugin into ``parent/hub-plugin-NAME`` (created whole or not at all);
    returns that directory. Raises ``TargetExists`` if it exists, ``OSError`` else."""
    target = parent / names.dist
    if target.exists() or target.is_symlink():
        raise TargetExists(f"{target} already exists: remove it or choose another --dir")
    parent.mkdir(parents=True, exist_ok=True)
    # build it beside the target, then rename: an error midway leaves nothing behind
    staging = Path(tempfile.mkdtemp(prefix=f".{names.dist}-", dir=parent))
    try:
        for rel, text in generate(names).items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; a project directory is not
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def next_steps(names: PluginNames, target: Path) -> list[str]:
    """What to run after generating, one shell command a line."""
    return [
        f"cd {shlex.quote(str(target))}",
        "pip install -e '.[test]'",
        "pytest",
        f"hub sim {names.name}",
        f"hub demo --plugins {names.name}",
    ]


__all__ = [
    "FILES",
    "MAX_NAME_LEN",
    "PluginNames",
    "TargetExists",
    "core_requirement",
    "generate",
    "next_steps",
    "plugin_names",
    "read_template",
    "render",
    "scaffold",
]
