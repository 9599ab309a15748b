"""Meta-tests: every hook and every public name is documented and tested."""

import ast
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

import hub_core
from hub_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "sdk-docs"


def hook_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "hub_spec")
    ]


def test_there_are_hooks() -> None:
    assert "hub_connection_factories" in hook_names()


def test_every_hook_is_documented() -> None:
    text = (DOCS / "writing-a-plugin.md").read_text()
    missing = [h for h in hook_names() if h not in text]
    assert not missing, f"hooks missing from sdk-docs/writing-a-plugin.md: {missing}"


def test_every_hook_is_really_called_by_the_registry() -> None:
    """Not a name grep: a plugin implementing every core hook records which ones the
    registry calls; a new hook spec fails here until the hub calls it (add its impl)."""
    from hub_core import ExchangeRegistry
    from hub_core.plugin import ConnectionFactory, HubPluginManager, hookimpl

    called: list[str] = []

    class Factory(ConnectionFactory):
        protocol = "every-hook"

        def create(self, config: object, sink: object) -> object:  # type: ignore[override]
            raise NotImplementedError

    class EveryHook:
        @hookimpl
        def hub_addhooks(self, pluginmanager: HubPluginManager) -> None:
            assert isinstance(pluginmanager, HubPluginManager)
            called.append("hub_addhooks")

        @hookimpl
        def hub_connection_factories(
            self, pluginmanager: HubPluginManager
        ) -> list[ConnectionFactory]:
            called.append("hub_connection_factories")
            return [Factory()]

        @hookimpl
        def hub_plugin_api_version(self) -> tuple[int, int]:
            called.append("hub_plugin_api_version")
            return (1, 0)

    reg = ExchangeRegistry()
    info = reg.register(EveryHook(), name="every-hook")
    assert info.enabled, info.error
    assert sorted(set(called)) == sorted(hook_names())
    assert reg.factory("every-hook").protocol == "every-hook"


def test_public_api_has_docstrings() -> None:
    # Read the source: mypyc-compiled classes do not keep their docstrings at run time.
    documented: set[str] = set()
    for path in (ROOT / "core" / "src" / "hub_core").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node):
                documented.add(node.name)
    undocumented = [
        name
        for name in hub_core.__all__
        if (inspect.isclass(obj := getattr(hub_core, name)) or inspect.isfunction(obj))
        and name not in documented
    ]
    assert not undocumented, f"public names without a docstring: {undocumented}"


# -- the site and its generated configuration reference -----------------------------------
def _config_reference() -> ModuleType:
    """The MkDocs hook that writes the configuration reference (sdk-docs/_hooks/)."""
    path = DOCS / "_hooks" / "config_reference.py"
    spec = importlib.util.spec_from_file_location("config_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _sections(page: str) -> dict[str, set[str]]:
    """Each heading's anchor (``{#anchor}``) -> the keys of its table rows."""
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in page.splitlines():
        heading = re.match(r"#+ .*\{#([\w-]+)\}\s*$", line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
        elif current is not None and (row := re.match(r"\| `([^`]+)` \|", line)):
            current.add(row.group(1))
    return sections


def _options_models() -> list[type[BaseModel]]:
    """Every options model in plugins/*/src/*/options.py, found by reading the files."""
    from hub_core.plugin import PluginOptions

    models = []
    for path in sorted(ROOT.glob("plugins/*/src/*/options.py")):
        module = importlib.import_module(f"{path.parent.name}.options")
        models += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, PluginOptions)
            and obj is not PluginOptions
            and obj.__module__ == module.__name__
        ]
    assert len(models) >= 3, models
    return models


def _model_tables(model: type[BaseModel], env_keys: bool = False) -> list[tuple[str, set[str]]]:
    """``(model name, its TOML keys)`` for ``model`` and every model nested in it."""
    from hub_core.config import Credentials

    keys = {f"{k}_env" if env_keys else k for k in model.model_fields}
    found = [(model.__name__, keys)]
    for info in model.model_fields.values():
        for inner in _models_in(info.annotation):
            found += _model_tables(inner, env_keys=inner is Credentials)
    return found


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def test_every_toml_key_is_in_the_configuration_reference() -> None:
    """Walk the pydantic models (the core's HubConfig down to credentials, and every
    plugin's options model): each table has a section listing exactly its keys."""
    from hub_core.config import HubConfig

    page = _config_reference().render()
    listed = list(_sections(page).values())
    tables = _model_tables(HubConfig)[1:]  # the top level is the [hub] / [exchanges] split
    for model in _options_models():
        tables += _model_tables(model)
    assert {"HubSection", "ExchangeConfig", "Credentials"} <= {name for name, _ in tables}
    missing = [(name, keys) for name, keys in tables if keys not in listed]
    assert not missing, f"tables whose keys the reference does not list exactly: {missing}"
    for key in ("reconnect_attempts", "api_key_env", "heartbeat_interval_s", "begin_string"):
        assert f"| `{key}` |" in page


def test_every_toml_key_has_a_description() -> None:
    from hub_core.config import HubConfig

    models = [HubConfig, *_options_models()]
    undocumented = []
    while models:
        model = models.pop()
        for key, info in model.model_fields.items():
            if not (info.description or "").strip():
                undocumented.append(f"{model.__name__}.{key}")
            models += _models_in(info.annotation)
    assert not undocumented, f"fields without a docstring (the reference shows it): {undocumented}"


def test_the_reference_shows_types_bounds_and_defaults() -> None:
    page = _config_reference().render()
    assert "| `reconnect_delay_ms` | integer | ≥ 1 | `250` |" in page
    fix_row = '| `begin_string` | one of `"FIX.4.2"`, `"FIX.4.4"`, `"FIXT.1.1"` |  | `"FIX.4.4"` |'
    assert fix_row in page
    assert "| `protocol` | string |  | required |" in page
    assert "| `password_env` | string: the name of an environment variable |" in page


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link or anchor, a page outside the nav, or a
    generator that fails, fails here (and in ``make docs``)."""
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed: `make setup` installs requirements-dev.txt")
        pytest.skip("mkdocs is not installed (pip install -r requirements-dev.txt)")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    page = (tmp_path / "reference" / "configuration.html").read_text(encoding="utf-8")
    assert "reconnect_max_delay_ms" in page and "sender_comp_id" in page


# -- snippets that must run as written ------------------------------------------------------
RUNNABLE_PAGES = ["ticks.md"]
"""Pages whose every ``python`` block is self-contained: each is run as it stands."""


def _python_blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_the_snippets_of_a_page_run(page: str) -> None:
    blocks = _python_blocks(page)
    assert blocks, f"{page} has no python block"
    for i, code in enumerate(blocks):
        exec(compile(code, f"sdk-docs/{page}#{i}", "exec"), {"__name__": f"snippet_{i}"})
