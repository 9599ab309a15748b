"""Configuration models (pydantic): one ``ExchangeConfig`` per connection.

Secrets are ``SecretStr`` and come from environment variables named in the
TOML (``api_key_env = "BINANCE_KEY"``), never from the file itself; they never
appear in logs, reprs, errors or ``hub check`` output.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import ErrorDetails

from hub_core.errors import ConfigError

_SECRET_FIELDS = ("username", "password", "api_key", "api_secret")


class Credentials(BaseModel):
    """Login material. Every field is secret; values come from the environment."""

    # attribute docstrings become field descriptions: the configuration reference is
    # generated from them (sdk-docs/_hooks/config_reference.py), so it cannot drift
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    username: SecretStr | None = None
    """The login or user name (FIX Username 553, a venue account)."""
    password: SecretStr | None = None
    """The password that goes with ``username``."""
    api_key: SecretStr | None = None
    """The venue's API key (Databento, crypto venues)."""
    api_secret: SecretStr | None = None
    """The secret that signs requests made with ``api_key``."""

    def __init__(
        self,
        username: str | SecretStr | None = None,
        password: str | SecretStr | None = None,
        api_key: str | SecretStr | None = None,
        api_secret: str | SecretStr | None = None,
    ) -> None:
        super().__init__(
            username=username, password=password, api_key=api_key, api_secret=api_secret
        )

    @classmethod
    def from_toml(cls, table: dict[str, Any], where: str) -> Credentials:
        """Build from a TOML table of ``<field>_env`` names (values read from os.environ)."""
        values: dict[str, str] = {}
        for key, env_name in table.items():
            if key in _SECRET_FIELDS:
                raise ConfigError(
                    f"{where}.{key}: secrets are never read from the config file",
                    hint=f"put the value in an environment variable and write "
                    f'{key}_env = "VARIABLE_NAME"',
                )
            if not key.endswith("_env") or key[:-4] not in _SECRET_FIELDS:
                raise ConfigError(
                    f"{where}.{key}: unknown credentials key",
                    hint="use one of " + ", ".join(f + "_env" for f in _SECRET_FIELDS),
                )
            if not isinstance(env_name, str) or not env_name:
                raise ConfigError(f"{where}.{key}: must name an environment variable")
            value = os.environ.get(env_name)
            if value is None:
                raise ConfigError(
                    f"{where}.{key}: environment variable {env_name} is not set",
                    hint=f"export {env_name}=... before starting the hub",
                )
            values[key[:-4]] = value
        return cls(**values)

    def __bool__(self) -> bool:
        return any(getattr(self, f) is not None for f in _SECRET_FIELDS)


class ConnectionSettings(TypedDict, total=False):
    """The keyword arguments every ``ExchangeConfig`` constructor takes (all optional),
    beside ``name``, ``credentials`` and ``options``, which each constructor names."""

    backup_endpoints: list[str]
    reconnect_attempts: int
    reconnect_delay_ms: int
    reconnect_max_delay_ms: int
    connect_timeout_ms: int
    stale_after_ms: int
    max_silent_recycles: int
    min_connect_interval_ms: int
    symbols: list[str]


class ExchangeConfig(BaseModel):
    """How to reach one exchange connection. Plugins validate ``options``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    protocol: str
    """Which plugin connects: the ``protocol`` of an installed connection factory
    (``hub plugins`` lists them)."""
    endpoint: str
    """Where to connect, in the form the plugin takes (``host:port``, ``wss://...``,
    ``fix://host:port``; for Databento ``""`` is the dataset's live gateway)."""
    name: str = ""
    """The connection's name: in TOML always the table name (``[exchanges.NAME]``), so
    leave it out; every tick carries it as ``exchange``."""
    backup_endpoints: list[str] = Field(default_factory=list)
    """Endpoints tried in turn after ``endpoint`` when an attempt delivers no data
    (the failover order)."""
    credentials: Credentials = Field(default_factory=Credentials)
    """Login material, from environment variables (the ``credentials`` table)."""
    reconnect_attempts: int = Field(default=0, ge=0)
    """How many reconnects in a row before giving up; 0 = forever."""
    reconnect_delay_ms: int = Field(default=250, ge=1)
    """The first reconnect's backoff, and the floor of every backoff (full jitter
    between it and the doubled delay)."""
    reconnect_max_delay_ms: int = Field(default=30_000, ge=1)
    """The largest backoff between two attempts (at least ``reconnect_delay_ms``)."""
    connect_timeout_ms: int = Field(default=10_000, ge=1)
    """How long one attempt (transport, handshake, logon) may take."""
    stale_after_ms: int = Field(default=30_000, ge=0)
    """Link silence (no bytes at all: no data, heartbeat, pong or ack) before a probe;
    a probe left unanswered for half as long again recycles the session. A quiet
    market on a live link is reported, never recycled. 0 = off."""
    max_silent_recycles: int = Field(default=3, ge=0)
    """Recycles in a row of sessions whose link sent nothing at all (not even a
    heartbeat) before the connection is declared dead; 0 = never."""
    min_connect_interval_ms: int = Field(default=200, ge=0)
    """Least time between two connection attempts to one venue address (host and
    port), across every connection of the hub: the venue's connection-rate limit.
    0 = off."""
    symbols: list[str] = Field(default_factory=list)
    """The venue's symbols to subscribe, in its own spelling; resubscribed on every
    reconnect."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The plugin's own settings, validated by its options model (see the options of
    each protocol)."""

    @model_validator(mode="after")
    def _check(self) -> ExchangeConfig:
        if self.reconnect_max_delay_ms < self.reconnect_delay_ms:
            raise ValueError(
                "reconnect_max_delay_ms must be >= reconnect_delay_ms "
                f"({self.reconnect_max_delay_ms} < {self.reconnect_delay_ms})"
            )
        # an empty endpoint is the plugin's to judge (``check_endpoint``): for Databento
        # it means the dataset's own gateway
        return self

    @property
    def endpoints(self) -> list[str]:
        """The endpoint, then each backup: the failover order."""
        return [self.endpoint, *self.backup_endpoints]

    # -- constructors ------------------------------------------------------
    @classmethod
    def ninjatrader(
        cls,
        addr: str,
        *,
        name: str = "",
        credentials: Credentials | None = None,
        options: dict[str, Any] | None = None,
        **kw: Unpack[ConnectionSettings],
    ) -> ExchangeConfig:
        """A NinjaTrader add-on at ``host:port``."""
        return cls._build("ninjatrader", addr, name, credentials, options or {}, kw)

    @classmethod
    def websocket(
        cls,
        name: str,
        url: str,
        *,
        credentials: Credentials | None = None,
        options: dict[str, Any] | None = None,
        **kw: Unpack[ConnectionSettings],
    ) -> ExchangeConfig:
        """A JSON WebSocket venue (``options.dialect`` defaults to ``name``)."""
        opts = {"dialect": name, **(options or {})}
        return cls._build("websocket", url, name, credentials, opts, kw)

    @classmethod
    def fix(
        cls,
        name: str,
        url: str,
        *,
        credentials: Credentials | None = None,
        options: dict[str, Any] | None = None,
        **kw: Unpack[ConnectionSettings],
    ) -> ExchangeConfig:
        """A FIX venue at ``fix://host:port`` (``fixs://`` for TLS)."""
        return cls._build("fix", url, name, credentials, options or {}, kw)

    @classmethod
    def interactive_brokers(
        cls,
        addr: str,
        client_id: int = 0,
        *,
        name: str = "",
        credentials: Credentials | None = None,
        options: dict[str, Any] | None = None,
        **kw: Unpack[ConnectionSettings],
    ) -> ExchangeConfig:
        """TWS or IB Gateway at ``host:port``."""
        opts = {"client_id": client_id, **(options or {})}
        return cls._build("ibkr", addr, name, credentials, opts, kw)

    @classmethod
    def databento(
        cls,
        dataset: str,
        api_key: str | None = None,
        *,
        endpoint: str = "",
        name: str = "",
        credentials: Credentials | None = None,
        options: dict[str, Any] | None = None,
        **kw: Unpack[ConnectionSettings],
    ) -> ExchangeConfig:
        """Databento live for ``dataset`` (API key from the argument, else the plugin reads
        ``DATABENTO_API_KEY``).

        ``endpoint`` ``""`` is Databento's live gateway for the dataset; ``host:port``
        overrides it."""
        opts = {"dataset": dataset, **(options or {})}
        creds = credentials or Credentials(api_key=api_key)
        return cls._build("databento", endpoint, name, creds, opts, kw)

    @classmethod
    def _build(
        cls,
        protocol: str,
        endpoint: str,
        name: str,
        credentials: Credentials | None,
        options: dict[str, Any],
        kw: ConnectionSettings,
    ) -> ExchangeConfig:
        return cls(
            protocol=protocol,
            endpoint=endpoint,
            name=name,
            credentials=credentials or Credentials(),
            options=options,
            **kw,
        )


class HubSection(BaseModel):
    """The ``[hub]`` table."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    plugins: list[str] | None = None
    """Allow-list of plugin names; default: every discovered plugin."""
    disabled_plugins: list[str] = Field(default_factory=list)
    """Deny-list, applied after the allow-list."""
    gc_freeze: bool | None = None
    """Freeze start-up objects out of the GC and raise the gen-0 threshold (see
    sdk-docs/architecture.md). Unset: the ``hub`` command does, a hub embedded in an
    application does not (the application's collector is its own)."""


class SinkConfig(BaseModel):
    """Where ticks go after the bus, to another process or machine (``[sinks.NAME]``).
    Plugins validate ``options``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: str
    """Which plugin's sink: the ``kind`` of an installed sink factory (``hub plugins``)."""
    url: str = ""
    """Where the sink sends, in the form its plugin takes (``nats://host:4222``)."""
    name: str = ""
    """The sink's name: in TOML always the table name (``[sinks.NAME]``), so leave it out."""
    credentials: Credentials = Field(default_factory=Credentials)
    """Login material, from environment variables (the ``credentials`` table)."""
    exchanges: list[str] | None = None
    """The connections whose ticks this sink sends; unset: every connection of this hub
    (never ticks this hub itself receives from another hub, so two hubs cannot loop)."""
    buffer: int = Field(default=1_000_000, ge=1)
    """Ticks held while the sink is behind or down; beyond that they are counted as
    dropped and the receiving side gets a ``Gap`` for them."""
    flush_ms: float = Field(default=1.0, gt=0)
    """The longest a tick waits before it is handed to the sink (batching bound)."""
    batch: int = Field(default=4096, ge=1)
    """The most ticks handed to the sink at once."""
    reconnect_delay_ms: int = Field(default=250, ge=1)
    """The first reconnect's backoff, and the floor of every backoff (full jitter)."""
    reconnect_max_delay_ms: int = Field(default=10_000, ge=1)
    """The largest backoff between two reconnects of the sink."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Options of the sink's plugin (its model validates them)."""


class HubConfig(BaseModel):
    """A whole ``hub.toml``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    hub: HubSection = Field(default_factory=HubSection)
    """Which plugins load, and process-wide settings."""
    exchanges: dict[str, ExchangeConfig] = Field(default_factory=dict)
    """One table per connection, ``[exchanges.NAME]``."""
    sinks: dict[str, SinkConfig] = Field(default_factory=dict)
    """One table per sink, ``[sinks.NAME]``: where ticks go after the bus."""


def _loc(err: ErrorDetails) -> str:
    return ".".join(str(p) for p in err.get("loc", ()))


def load_config(path: str | Path) -> HubConfig:
    """Read and validate a hub TOML file; errors name the TOML key and the fix."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{p} is a directory, not a config file", hint=f"give the TOML file, e.g. {p}/hub.toml"
        ) from None
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}: line {line} is not UTF-8 (byte 0x{exc.object[exc.start]:02x})",
            hint="TOML files are UTF-8: re-save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(raw, source=str(p))


def parse_config(raw: dict[str, Any], source: str = "<config>") -> HubConfig:
    """Validate an already-parsed TOML document."""
    raw = dict(raw)
    unknown = set(raw) - {"hub", "exchanges", "sinks"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{source}: unknown top-level table [{key}]",
            hint="use [hub], [exchanges.NAME] and [sinks.NAME]",
        )
    exchanges = _named_tables(raw, "exchanges", source)
    sinks = _named_tables(raw, "sinks", source)
    try:
        return HubConfig.model_validate(
            {"hub": raw.get("hub", {}), "exchanges": exchanges, "sinks": sinks}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        key = _loc(first)
        raise ConfigError(
            f"{source}: {key}: {first['msg']}",
            hint=_hint_for(first),
        ) from None


def options_error(exc: ValidationError, where: str, hint: str, exchange: str = "") -> ConfigError:
    """The ``ConfigError`` of a plugin's options model refusing ``where`` (``exchanges.NAME.
    options``, ``sinks.NAME.options``): the first error, under its full TOML key."""
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first.get("loc", ()))
    return ConfigError(
        f"{where}{'.' + key if key else ''}: {first['msg']}", exchange=exchange, hint=hint
    )


def _named_tables(raw: dict[str, Any], section: str, source: str) -> dict[str, Any]:
    """The ``[SECTION.NAME]`` tables, each with its ``name`` and its credentials read."""
    tables_raw = raw.get(section, {})
    if not isinstance(tables_raw, dict):
        raise ConfigError(f"{source}: {section} must be a table of [{section}.NAME] entries")
    tables: dict[str, Any] = {}
    for name, entry in tables_raw.items():
        where = f"{section}.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: {where} must be a table")
        table = dict(entry)
        creds = table.pop("credentials", None)
        if creds is not None:
            if not isinstance(creds, dict):
                raise ConfigError(f"{source}: {where}.credentials must be a table")
            table["credentials"] = Credentials.from_toml(creds, f"{where}.credentials")
        table.setdefault("name", name)
        if table["name"] != name:
            raise ConfigError(f"{source}: {where}.name must be {name!r} or absent")
        tables[name] = table
    return tables


def _hint_for(err: ErrorDetails) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        return "remove this key or check its spelling"
    return "fix this value"
