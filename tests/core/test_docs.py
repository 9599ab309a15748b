"""Meta-tests: every hook and every public name is documented and tested."""

import ast
import inspect
from pathlib import Path

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
