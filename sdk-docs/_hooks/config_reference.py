"""MkDocs hook: the configuration reference, generated from the pydantic models.

``render()`` walks the core's ``HubConfig`` (``[hub]``, ``[exchanges.NAME]`` and its
``credentials``) and the options model of every plugin in ``plugins/`` (through the
plugin's own ``ConnectionFactory``), and writes one table row per TOML key: type,
allowed values, default and the field's docstring. ``on_files`` adds the result to the
site as ``reference/configuration.md`` at build time, so the page cannot drift from
the code. tests/core/test_docs.py checks that every key of every model has its row.

Run alone (``python sdk-docs/_hooks/config_reference.py``) it prints the page.
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parents[2]
PAGE = "reference/configuration.md"


@dataclass(frozen=True)
class Table:
    """One TOML table of the reference: its heading, anchor and model."""

    toml: str
    """How the table is written in TOML (``exchanges.NAME.credentials``)."""
    anchor: str
    model: type[BaseModel]
    secrets_from_env: bool = False
    """Credentials: each field ``f`` is written ``f_env = "VARIABLE"``."""


@dataclass(frozen=True)
class PluginEntry:
    """A plugin of this repository and the factories its hook returns."""

    name: str
    """Its entry-point name (what ``[hub] plugins`` lists)."""
    distribution: str
    factories: list[Any]
    sink_factories: list[Any] = field(default_factory=list)


def toml_keys(table: Table) -> Iterator[tuple[str, FieldInfo]]:
    """Each TOML key of ``table`` with the pydantic field behind it."""
    for field_name, info in table.model.model_fields.items():
        yield (f"{field_name}_env" if table.secrets_from_env else field_name), info


def repo_plugins() -> list[PluginEntry]:
    """Every plugin under ``plugins/``, imported and asked for its factories through a
    real registry (so a plugin with its own extension points is set up as in a hub)."""
    from hub_core import ExchangeRegistry

    registry = ExchangeRegistry()
    found: list[PluginEntry] = []
    for pyproject in sorted(REPO.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        for ep_name, module_name in project.get("entry-points", {}).get("hub", {}).items():
            module = importlib.import_module(module_name)
            info = registry.register(module, name=ep_name)
            if not info.enabled:
                raise RuntimeError(f"plugin {ep_name} did not load: {info.error}")
            factories = [registry.factory(p) for p in info.protocols]
            sinks = [registry.sink_factory(k) for k in info.sinks]
            found.append(PluginEntry(ep_name, project["name"], factories, sinks))
    return found


# -- rendering one field --------------------------------------------------------------
def type_text(annotation: Any) -> str:
    """A field's type in words a TOML writer uses."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [type_text(a) for a in args if a is not type(None)]
        text = " or ".join(kinds)
        return f"{text} (optional)" if type(None) in args else text
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{toml_value(a)}`" for a in args)
    if origin is list:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {type_text(args[1])}" if len(args) == 2 else "table"
    if annotation is str:
        return "string"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is SecretStr:
        return "secret string"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if annotation is Any:
        return "any"
    name = getattr(annotation, "__name__", None)
    return str(name or annotation)


def toml_value(value: object) -> str:
    """``value`` as it is written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Path):
        return toml_value(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)  # TOML allows 1_000
    return repr(value)


def default_text(info: FieldInfo) -> str:
    """The default as TOML, "required", or "unset" for ``None``."""
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value: object = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, BaseModel):
        return "(empty)" if not value.model_dump(exclude_none=True) else "(see below)"
    if value in ([], {}):
        return "`[]`" if value == [] else "`{}`"
    return f"`{toml_value(value)}`"


def allowed_text(info: FieldInfo) -> str:
    """Bounds and patterns pydantic enforces on the field."""
    out: list[str] = []
    for meta in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                out.append(f"{sign} {bound:_}" if isinstance(bound, int) else f"{sign} {bound}")
        min_length = getattr(meta, "min_length", None)
        if min_length:
            out.append(f"at least {min_length}")
        max_length = getattr(meta, "max_length", None)
        if max_length is not None:
            out.append(f"at most {max_length}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            out.append(f"matches `{pattern}`")
    return ", ".join(out)


def description_text(info: FieldInfo) -> str:
    """The field's docstring on one line, reStructuredText literals as Markdown code."""
    text = " ".join((info.description or "").split())
    text = text.replace("``", "`").replace("|", "\\|")
    # a page named in a docstring becomes a link (checked by the strict build)
    return re.sub(r"sdk-docs/([\w/-]+\.md)", r"[\1](../\1)", text)


def table_rows(table: Table) -> list[str]:
    rows = [
        "| key | type | allowed | default | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, info in toml_keys(table):
        kind = type_text(info.annotation)
        default = default_text(info)
        if table.secrets_from_env:
            kind, default = "string: the name of an environment variable", "unset"
        cells = [f"`{key}`", kind, allowed_text(info), default, description_text(info)]
        rows.append("| " + " | ".join(c.replace("\n", " ") for c in cells) + " |")
    return rows


def model_doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "").replace("``", "`")


# -- the page -------------------------------------------------------------------------
def core_tables() -> list[Table]:
    from hub_core.config import Credentials, ExchangeConfig, HubSection, SinkConfig

    return [
        Table("hub", "hub", HubSection),
        Table("exchanges.NAME", "exchanges", ExchangeConfig),
        Table("exchanges.NAME.credentials", "credentials", Credentials, secrets_from_env=True),
        Table("sinks.NAME", "sinks", SinkConfig),
    ]


def options_tables(plugins: list[PluginEntry]) -> list[tuple[PluginEntry, Any, Table]]:
    """``(plugin, factory, options table)`` for every protocol, in plugin order."""
    out = []
    for plugin in plugins:
        for factory in plugin.factories:
            table = Table(
                f"exchanges.NAME.options  # protocol = {factory.protocol!r}",
                f"options-{factory.protocol}",
                factory.options_model,
            )
            out.append((plugin, factory, table))
    return out


INTRO = """\
# Configuration reference

<!-- Generated at build time by sdk-docs/_hooks/config_reference.py from the pydantic
models of the core and of each plugin's options: edit the models' docstrings, not this. -->

A hub is configured by one TOML file (`hub run hub.toml`, `hub check hub.toml`,
`ExchangeHub.from_toml(path)`). It has two kinds of table: `[hub]` and one
`[exchanges.NAME]` per connection, whose `options` belong to the plugin that serves
its `protocol`. Any other top-level table, and any key not listed here, is an error
that names the key (`hub check` reports it before anything connects).

```toml
[hub]
plugins = ["ninjatrader", "websocket"]     # optional allow-list

[exchanges.binance]                        # NAME: how ticks, logs and the CLI name it
protocol = "websocket"
endpoint = "wss://stream.binance.com:9443/ws"
symbols = ["BTCUSDT", "ETHUSDT"]
options = { dialect = "binance", channels = ["trade", "bookTicker"] }

[exchanges.binance.credentials]            # secrets come from the environment
api_key_env = "BINANCE_KEY"
```

Every table below is generated from the model that validates it, so what is listed
is exactly what is accepted. Durations say their unit in their name (`_ms`, `_s`).
"""


def render(plugins: list[PluginEntry] | None = None) -> str:
    """The whole page, as Markdown."""
    if plugins is None:
        plugins = repo_plugins()
    hub, exchange, credentials, sinks = core_tables()
    out = [INTRO]
    out += [
        f"## `[{hub.toml}]` {{#{hub.anchor}}}",
        "",
        model_doc(hub.model),
        "A file without it loads every installed plugin.",
        "",
        *table_rows(hub),
        "",
        f"## `[{exchange.toml}]` {{#{exchange.anchor}}}",
        "",
        model_doc(exchange.model),
        "`NAME` is yours: it is the connection's name in every tick (`exchange`), in the",
        "CLI's output and in the metrics. Every key but `protocol` and `endpoint` may be",
        "left out. The same keys are the keyword arguments of `ExchangeConfig` in Python.",
        "",
        *table_rows(exchange),
        "",
        f"### `[{credentials.toml}]` {{#{credentials.anchor}}}",
        "",
        model_doc(credentials.model),
        "The file names environment variables; the values are read from the environment",
        "when the file is loaded. A secret written in the file itself "
        '(`password = "..."`) is refused.',
        "",
        "```toml",
        f"[{credentials.toml}]",
        'username_env = "ACME_USER"',
        'password_env = "ACME_PASSWORD"',
        "```",
        "",
        *table_rows(credentials),
        "",
        "## `options` of each protocol {#options}",
        "",
        "`options` is an inline table (`options = { key = value }`) or a table of its own",
        "(`[exchanges.NAME.options]`); the plugin that serves `protocol` validates it.",
        "",
    ]
    for plugin, factory, table in options_tables(plugins):
        model = table.model
        out += [
            f'### `protocol = "{factory.protocol}"` {{#{table.anchor}}}',
            "",
            f"Plugin `{plugin.name}` (distribution `{plugin.distribution}`): "
            f"{(factory.description or model_doc(model)).rstrip('.')}.",
            "",
            model_doc(model),
            "",
        ]
        venues = dict(factory.venues())
        if venues:
            names = ", ".join(f"`{v}`" for v in sorted(venues))
            out += [
                f'Venues it serves through its options: {names}. `protocol = "<venue>"` is '
                "refused with a hint to write this protocol and those options.",
                "",
            ]
        out += [*table_rows(table), ""]
        out += nested_tables(factory.protocol, table)
        out += plugin_extras(factory)
    out += [
        f"## `[{sinks.toml}]` {{#{sinks.anchor}}}",
        "",
        model_doc(sinks.model),
        "`NAME` is yours (the sink's name in the log and `hub.sink_status()`). Every key but",
        "`kind` may be left out; `credentials` is a table like an exchange's",
        "([above](#credentials)). What the hub guarantees a sink: [Sinks](../sinks.md).",
        "",
        *table_rows(sinks),
        "",
    ]
    for plugin, factory, table in sink_options_tables(plugins):
        out += [
            f'### `options` of `kind = "{factory.kind}"` {{#{table.anchor}}}',
            "",
            f"Plugin `{plugin.name}` (distribution `{plugin.distribution}`): "
            f"{(factory.description or model_doc(table.model)).rstrip('.')}.",
            "",
            model_doc(table.model),
            "",
            *table_rows(table),
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def sink_options_tables(plugins: list[PluginEntry]) -> list[tuple[PluginEntry, Any, Table]]:
    """``(plugin, sink factory, options table)`` for every sink kind, in plugin order."""
    return [
        (
            plugin,
            factory,
            Table(
                f"sinks.NAME.options  # kind = {factory.kind!r}",
                f"sink-options-{factory.kind}",
                factory.options_model,
            ),
        )
        for plugin in plugins
        for factory in plugin.sink_factories
    ]


def nested_tables(protocol: str, table: Table) -> list[str]:
    """A section for each model nested in an options model (``contracts = { SYMBOL =
    { ... } }`` of the ibkr plugin): its keys have a table of their own."""
    out: list[str] = []
    for key, info in table.model.model_fields.items():
        annotation = info.annotation
        inner = (
            typing.get_args(annotation)[-1] if typing.get_origin(annotation) is dict else annotation
        )
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            continue
        entry = "NAME" if inner is not annotation else ""
        sub = Table(
            f"{table.toml}.{key}{'.' + entry if entry else ''}", f"{table.anchor}-{key}", inner
        )
        out += [
            f'#### `{key}` of `protocol = "{protocol}"` {{#{sub.anchor}}}',
            "",
            model_doc(inner),
            "",
            *table_rows(sub),
            "",
        ]
    return out


def plugin_extras(factory: Any) -> list[str]:
    """What a plugin's factory knows beyond its model: the websocket plugin's installed
    dialects and their channels (``options.dialect`` / ``options.channels``)."""
    dialects = getattr(factory, "dialects", None)
    if dialects is None or not hasattr(dialects, "names"):
        return []
    rows = [
        f'#### Dialects of `protocol = "{factory.protocol}"` {{#{factory.protocol}-dialects}}',
        "",
        "The installed dialects (`options.dialect`) and their channels (`options.channels`):",
        "",
        "| dialect | channels | default channels |",
        "| --- | --- | --- |",
    ]
    for name in dialects.names():
        dialect = dialects.get(name)
        channels = ", ".join(f"`{c}`" for c in dialect.channels) or "(any)"
        defaults = ", ".join(f"`{c}`" for c in dialect.default_channels)
        rows.append(f"| `{name}` | {channels} | {defaults} |")
    return [*rows, ""]


def on_files(files: Any, config: Any) -> Any:
    """MkDocs event: add the generated page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":
    print(render(), end="")
