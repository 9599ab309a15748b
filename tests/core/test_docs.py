"""Meta-tests: every hook and every public name is documented and tested."""

import ast
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import tomllib
import typing
import xml.etree.ElementTree as ET
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
    from hub_core.plugin import ConnectionFactory, HubPluginManager, SinkFactory, hookimpl

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
        def hub_sink_factories(self, pluginmanager: HubPluginManager) -> list[SinkFactory]:
            called.append("hub_sink_factories")
            return [Sinks()]

        @hookimpl
        def hub_plugin_api_version(self) -> tuple[int, int]:
            called.append("hub_plugin_api_version")
            return (1, 0)

    class Sinks(SinkFactory):
        kind = "every-hook-sink"

        def create(self, config: object) -> object:  # type: ignore[override]
            raise NotImplementedError

    reg = ExchangeRegistry()
    info = reg.register(EveryHook(), name="every-hook")
    assert info.enabled, info.error
    assert sorted(set(called)) == sorted(hook_names())
    assert reg.factory("every-hook").protocol == "every-hook"
    assert reg.sink_factory("every-hook-sink").kind == "every-hook-sink"
    assert info.sinks == ["every-hook-sink"]


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
RUNNABLE_PAGES = [
    "ticks.md",
    "reference/plugin.md",
    "reference/simulation.md",
    "reference/testing.md",
    "reference/hooks.md",
]
"""Pages whose ``python`` blocks that import from ``hub_core`` are whole programs: each is
run as it stands (blocks without such an import are signatures, not programs)."""


def _python_blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    return [b for b in blocks if re.search(r"^from hub_core", b, re.M)]


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_the_snippets_of_a_page_run(page: str) -> None:
    blocks = _python_blocks(page)
    assert blocks, f"{page} has no python block"
    for i, code in enumerate(blocks):
        exec(compile(code, f"sdk-docs/{page}#{i}", "exec"), {"__name__": f"snippet_{i}"})


# -- the step-by-step guide builds a plugin that passes its tests ---------------------------
GUIDE = DOCS / "writing-a-plugin.md"


def guide_files() -> dict[str, str]:
    """Every ``# file: PATH`` block of the guide, blocks of one path joined in order."""
    files: dict[str, str] = {}
    blocks = r"```(?:python|toml)\n# file: (\S+)\n(.*?)```"
    for match in re.finditer(blocks, GUIDE.read_text(encoding="utf-8"), re.S):
        path, body = match.group(1), match.group(2)
        files[path] = files.get(path, "") + body
    return files


def test_the_guide_is_a_whole_plugin() -> None:
    files = guide_files()
    for path in ("pyproject.toml", "src/hub_plugin_acme/__init__.py", "tests/test_conformance.py"):
        assert path in files, f"the guide has no {path}"
    project = tomllib.loads(files["pyproject.toml"])["project"]
    assert project["entry-points"]["hub"] == {"acme": "hub_plugin_acme"}
    # the guide names only what it imports: the kit, nothing else of the core
    from .test_plugin_kit import KIT_MODULES

    for path, code in files.items():
        if path.endswith(".py"):
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hub_core"):
                    assert node.module in KIT_MODULES, f"{path} imports {node.module}"


@pytest.mark.slow
def test_the_guide_plugin_passes_its_tests_and_the_conformance_suite(tmp_path: Path) -> None:
    """Write the guide's files out and run their tests (codec and the whole conformance
    suite) in a pytest of their own: the guide's code runs as written."""
    root = tmp_path / "hub-plugin-acme"
    for path, code in guide_files().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    (root / "src" / "hub_plugin_acme" / "py.typed").write_text("")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), *sys.path])
    report = tmp_path / "report.xml"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-rs", f"--junitxml={report}", "tests"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    suite = ET.parse(report).getroot().iter("testsuite")
    counts = {k: sum(int(s.get(k, 0)) for s in suite) for k in ("tests", "skipped")}
    from hub_core.testing import ConformanceSuite

    cases = [n for n in dir(ConformanceSuite) if n.startswith("test_")]
    assert counts["skipped"] == 0, out.stdout[-3000:]  # every optional fault is there
    assert counts["tests"] >= len(cases) + 3, counts  # every case, and the codec's tests


# -- every hook and every kit name has its reference section ------------------------------
KIT_PAGES = {
    "hub_core.plugin": "reference/plugin.md",
    "hub_core.simulation": "reference/simulation.md",
    "hub_core.testing": "reference/testing.md",
}
FIELDS_ELSEWHERE = {
    "Trade": "ticks.md",
    "Quote": "ticks.md",
    "BookUpdate": "ticks.md",
    "BookSnapshot": "ticks.md",
    "BookClear": "ticks.md",
    "Gap": "ticks.md",
    "ConnectionStateChanged": "ticks.md",
    "OrderBook": "books.md",
    "MboBook": "books.md",
}
"""Kit classes whose members are described on another page (their section links there)."""


def _section(page: str, name: str) -> str:
    """The text under the heading ``### `name``` up to the next heading of any level."""
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(rf"^#+ `{re.escape(name)}`\s*$(.*?)(?=^#)", text + "\n#", re.M | re.S)
    return match.group(1) if match else ""


def _source_definition(obj: object, name: str) -> ast.ClassDef | ast.FunctionDef | None:
    """The class or function ``name`` in the core's source (compiled modules drop
    signatures and docstrings at run time, so read the file)."""
    module = getattr(obj, "__module__", "") or ""
    if not module.startswith("hub_core"):
        return None
    path = ROOT / "core" / "src" / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if not path.exists():
        return None
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            return node
    return None


def _public_members(node: ast.ClassDef | ast.FunctionDef) -> set[str]:
    """A function's parameters; a class's constructor parameters, methods and fields."""
    names: set[str] = set()
    if isinstance(node, ast.FunctionDef):
        args = node.args
        names |= {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    else:
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                if item.name == "__init__":
                    names |= _public_members(item)  # type: ignore[arg-type]
                elif not item.name.startswith("test_"):
                    names.add(item.name)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                names.add(item.target.id)
    return {n for n in names if not n.startswith("_") and n not in ("self", "cls")}


def test_every_hook_has_a_reference_section() -> None:
    missing = [h for h in hook_names() if not _section("reference/hooks.md", h).strip()]
    assert not missing, f"hooks without a section in sdk-docs/reference/hooks.md: {missing}"


@pytest.mark.parametrize("module_name", sorted(KIT_PAGES))
def test_every_kit_name_has_a_section_naming_its_members(module_name: str) -> None:
    """Each name of the module's ``__all__`` has a heading of its own on the module's
    reference page; for a class or function, the section (or the page its members are
    described on) names every parameter, method and field, so a new argument or method
    fails here until it is documented."""
    module = importlib.import_module(module_name)
    page = KIT_PAGES[module_name]
    plugin_kit = importlib.import_module("hub_core.plugin")
    problems = []
    for name in module.__all__:
        section = _section(page, name)
        if not section.strip():
            # a name the plugin kit also exports may be documented there once
            if (
                module_name != "hub_core.plugin"
                and name in plugin_kit.__all__
                and f"`{name}`" in (DOCS / page).read_text(encoding="utf-8")
            ):
                continue
            problems.append(f"{name}: no section")
            continue
        obj = getattr(module, name)
        node = _source_definition(obj, name)
        if node is None:
            continue
        described = section
        if name in FIELDS_ELSEWHERE:
            described += (DOCS / FIELDS_ELSEWHERE[name]).read_text(encoding="utf-8")
        missing = sorted(m for m in _public_members(node) if m not in described)
        if missing:
            problems.append(f"{name}: {missing}")
    assert not problems, f"sdk-docs/{page} is missing: {problems}"


# -- troubleshooting: the messages it quotes are the ones the hub prints --------------------
TROUBLE = DOCS / "troubleshooting.md"
_EX = '[exchanges.a]\nprotocol = "lineproto"\nendpoint = "127.0.0.1:1"\n'
_CREDS = _EX + "[exchanges.a.credentials]\n"
CONFIG_MESSAGES = [
    ("[hubb]\n", "unknown top-level table [X]: use [hub], [exchanges.NAME] and [sinks.NAME]"),
    (_EX + 'symbol = ["A"]\n',
     "Extra inputs are not permitted: remove this key or check its spelling"),
    ('[exchanges.a]\nprotocol = "x"\n', "exchanges.NAME.endpoint: Field required: add this key"),
    (_EX + "reconnect_attempts = -1\n",
     "Input should be greater than or equal to 0: fix this value"),
    (_EX + "reconnect_delay_ms = 9\nreconnect_max_delay_ms = 1\n",
     "reconnect_max_delay_ms must be >= reconnect_delay_ms"),
    (_EX + 'name = "b"\n', "exchanges.NAME.name must be 'NAME' or absent"),
    (_CREDS + 'password = "x"\n',
     "exchanges.NAME.credentials.password: secrets are never read from the config file"),
    (_CREDS + 'password_env = "HUB_DOCS_UNSET_VARIABLE"\n',
     "environment variable V is not set: export V=... before starting the hub"),
    (_CREDS + 'token_env = "X"\n',
     "unknown credentials key: use one of username_env, password_env, api_key_env, api_secret_env"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "quoted"), CONFIG_MESSAGES, ids=[q[:40] for _, q in CONFIG_MESSAGES]
)
def test_troubleshooting_quotes_the_config_errors(tmp_path: Path, toml: str, quoted: str) -> None:
    """The page quotes each message with placeholders (NAME, X, V); the real error for
    a file that has that problem reads the same with the placeholders filled in."""
    from hub_core import ConfigError, load_config

    assert quoted in TROUBLE.read_text(encoding="utf-8")
    path = tmp_path / "hub.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    pattern = re.escape(quoted)
    for placeholder in ("NAME", "X", "V"):  # the page's placeholders: any one word
        pattern = re.sub(rf"\b{placeholder}\b", r"[^\\s:.\\]]+", pattern)
    assert re.search(pattern, str(info.value)), (quoted, str(info.value))


def test_troubleshooting_names_every_error_class_and_exit_code() -> None:
    from hub_core import errors

    text = TROUBLE.read_text(encoding="utf-8")
    classes = [
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, errors.HubError | errors.DecodeError)
    ]
    missing = [c for c in classes if f"`{c}`" not in text]
    assert not missing, f"error classes missing from troubleshooting.md: {missing}"
    from hub_core.cli.session import ExitCode

    for code in ExitCode:
        assert f"`{int(code)}`" in text, f"exit code {code!r} is not explained"


def test_every_conformance_case_is_listed() -> None:
    from hub_core.testing import ConformanceSuite

    text = (DOCS / "conformance.md").read_text(encoding="utf-8")
    cases = [n for n in dir(ConformanceSuite) if n.startswith("test_")]
    missing = [c for c in cases if f"| `{c}` |" not in text]
    assert cases and not missing, f"conformance cases missing from conformance.md: {missing}"


def test_the_docs_stand_alone() -> None:
    """sdk-docs is all a vendor has: it names no document outside the repository."""
    for page in DOCS.rglob("*.md"):
        assert "DESIGN.md" not in page.read_text(encoding="utf-8"), page
