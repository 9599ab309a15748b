"""``hub check``: validate a config the way ``hub run`` will use it, and summarise it.

Validation is the same path ``hub run`` takes: ``load_config`` (TOML syntax,
known keys and value types, credentials from the environment), then, with
the plugins the ``[hub]`` table allows, that each exchange's ``protocol`` has
a plugin and that its ``options`` pass that plugin's model. Every error
names the TOML key. The summary never shows a secret: credentials appear as
the names of the environment variables they come from.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub_core.config import HubConfig, load_config, options_error
from hub_core.contracts import ConnectionFactory
from hub_core.errors import ConfigError, HubError
from hub_core.hub import check_endpoints
from hub_core.redact import redact_endpoint, redact_options
from hub_core.registry import ExchangeRegistry


@dataclass
class ValidatedConfig:
    """A config that passed every check, with the registry that validated it."""

    path: Path
    config: HubConfig
    registry: ExchangeRegistry
    factories: dict[str, ConnectionFactory]
    credential_envs: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per exchange: credential field -> environment variable name."""
    warnings: list[str] = field(default_factory=list)


def _option_hint(kind: str) -> str:
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove this key or check its spelling"
    return "fix this value"


def _options_error(exc: ValidationError, path: Path, where: str, readme: str) -> ConfigError:
    hint = f"{_option_hint(exc.errors()[0].get('type', ''))} ({readme})"
    return options_error(exc, f"{path}: {where}", hint)


def validate_config(path: str | Path) -> ValidatedConfig:
    """Load and fully validate ``path``; raises ``ConfigError``/``PluginError`` naming the key."""
    p = Path(path)
    config = load_config(p)
    registry = ExchangeRegistry(allow=config.hub.plugins, deny=config.hub.disabled_plugins)
    registry.discover()
    factories: dict[str, ConnectionFactory] = {}
    for name, ex in config.exchanges.items():
        try:
            factory = registry.factory(ex.protocol, exchange=name)
        except HubError as exc:
            raise type(exc)(f"{p}: exchanges.{name}.protocol: {exc}") from None
        check_endpoints(factory, ex, f"{p}: exchanges.{name}")
        try:
            factory.validate_options(ex)
        except ValidationError as exc:
            readme = f"see the {factory.protocol} plugin's README for its options"
            raise _options_error(exc, p, f"exchanges.{name}.options", readme) from None
        factories[name] = factory
    for name, sc in config.sinks.items():
        try:
            sink_factory = registry.sink_factory(sc.kind, sink=name)
        except HubError as exc:
            raise type(exc)(f"{p}: sinks.{name}.kind: {exc}") from None
        try:
            sink_factory.validate_options(sc)
        except ValidationError as exc:
            readme = f"see the {sc.kind} plugin's README for its sink options"
            raise _options_error(exc, p, f"sinks.{name}.options", readme) from None
        try:
            sink_factory.check(sc)
        except HubError as exc:
            raise type(exc)(f"{p}: sinks.{name}.url: {exc}") from None
        unknown = sorted(set(sc.exchanges or ()) - set(config.exchanges))
        if unknown:
            raise ConfigError(
                f"{p}: sinks.{name}.exchanges: no connection named {', '.join(unknown)}",
                hint="list names of [exchanges.NAME] tables",
            )
    result = ValidatedConfig(p, config, registry, factories)
    result.credential_envs = _credential_envs(p)
    for info in registry.plugins():
        if info.error and (config.hub.plugins is None or info.name in config.hub.plugins):
            if info.error.startswith("disabled by"):
                continue
            result.warnings.append(f"plugin {info.name}: {info.error}")
    for name, ex in config.exchanges.items():
        if not ex.symbols:
            result.warnings.append(
                f"exchanges.{name}.symbols is empty: the connection opens but subscribes nothing"
            )
    if not config.exchanges:
        result.warnings.append("no [exchanges.NAME] tables: `hub run` would have nothing to do")
    return result


def _credential_envs(path: Path) -> dict[str, dict[str, str]]:
    """Which environment variable each credential comes from (names only, never values)."""
    raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    out: dict[str, dict[str, str]] = {}
    exchanges = raw.get("exchanges", {})
    if not isinstance(exchanges, dict):
        return out
    for name, entry in exchanges.items():
        creds = entry.get("credentials") if isinstance(entry, dict) else None
        if isinstance(creds, dict):
            out[name] = {
                str(key)[: -len("_env")]: str(env)
                for key, env in creds.items()
                if str(key).endswith("_env")
            }
    return out


def summary_lines(checked: ValidatedConfig) -> list[str]:
    """The human summary ``hub check`` prints after ``OK``."""
    cfg = checked.config
    exchanges = cfg.exchanges
    protocols = sorted({ex.protocol for ex in exchanges.values()})
    symbols = sorted({s for ex in exchanges.values() for s in ex.symbols})
    lines = [
        f"{len(exchanges)} exchange{'s' if len(exchanges) != 1 else ''}, "
        f"protocols: {', '.join(protocols) or '-'}, "
        f"{len(symbols)} symbol{'s' if len(symbols) != 1 else ''}"
    ]
    enabled = [i for i in checked.registry.plugins() if i.enabled]
    if enabled:
        lines.append("plugins: " + ", ".join(f"{i.name} {i.version}".rstrip() for i in enabled))
    for name, ex in exchanges.items():
        lines.append(f"[exchanges.{name}]")
        lines.append(f"  protocol   {ex.protocol}")
        lines.append(f"  endpoint   {redact_endpoint(ex.endpoint)}")
        if ex.backup_endpoints:
            backups = ", ".join(redact_endpoint(e) for e in ex.backup_endpoints)
            lines.append(f"  backups    {backups}")
        lines.append(f"  symbols    {', '.join(ex.symbols) or '(none)'}")
        envs = checked.credential_envs.get(name, {})
        if envs:
            creds = ", ".join(f"{fld} from ${env} (set)" for fld, env in sorted(envs.items()))
            lines.append(f"  credentials {creds}")
        if ex.options:
            opts = redact_options(dict(ex.options))
            lines.append("  options    " + ", ".join(f"{k}={v!r}" for k, v in opts.items()))
        reconnect = (
            "forever" if ex.reconnect_attempts == 0 else f"up to {ex.reconnect_attempts} times"
        )
        lines.append(
            f"  reconnect  {reconnect}, {ex.reconnect_delay_ms}-{ex.reconnect_max_delay_ms} ms"
            f"; stale after {ex.stale_after_ms} ms"
        )
    for name, sc in cfg.sinks.items():
        lines.append(f"[sinks.{name}]")
        lines.append(f"  kind       {sc.kind}")
        lines.append(f"  url        {redact_endpoint(sc.url)}")
        lines.append(f"  exchanges  {', '.join(sc.exchanges) if sc.exchanges else '(all)'}")
        if sc.options:
            opts = redact_options(dict(sc.options))
            lines.append("  options    " + ", ".join(f"{k}={v!r}" for k, v in opts.items()))
    return lines


__all__ = ["ValidatedConfig", "summary_lines", "validate_config"]
