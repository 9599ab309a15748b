"""Opening a nats-py client for the sink and the source: credentials, TLS, and nats-py's
errors as the hub's (``ConnectionFailed`` is retried, ``AuthenticationError`` and
``ConfigError`` are not). nats-py's own reconnect is off: the hub's supervisor (source)
and sink runner own reconnects, so a lost link is always seen and becomes a Gap."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import nats.errors
from nats.aio.client import Client

from hub_core.plugin import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    Credentials,
    redact_endpoint,
    redact_text,
)
from hub_plugin_nats.common import NatsAuthOptions

SCHEMES = ("nats", "tls")
_HINT_REACH = "check that nats-server runs and listens at the URL (nats://host:4222)"
_HINT_AUTH = (
    "check the user and password (in the URL or credentials), the token "
    "(credentials.api_key_env), the nkey seed or the creds file against the server's "
    "authorization block"
)


def check_url(url: str) -> None:
    """``ValueError`` saying what is wrong with a NATS URL: ``nats://`` or ``tls://``, a
    host and a port. One server per URL (a connection lists more in
    ``backup_endpoints``): a comma-joined list would not be redacted whole."""
    if not url:
        raise ValueError("the URL must not be empty (nats://127.0.0.1:4222)")
    if "," in url:
        raise ValueError(
            "one server per URL: put the others in backup_endpoints (the hub fails over)"
        )
    shown = redact_endpoint(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{shown!r}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{shown!r}: the scheme must be nats:// or tls://")
    if not parts.hostname:
        raise ValueError(f"{shown!r} names no host")
    if port is None:
        raise ValueError(f"{shown!r} names no port (nats-server listens on 4222)")


def _tls(options: NatsAuthOptions, url: str) -> ssl.SSLContext | None:
    if not (url.startswith("tls://") or options.tls_ca_file or options.tls_cert_file):
        return None
    context = ssl.create_default_context(cafile=options.tls_ca_file or None)
    if options.tls_cert_file:
        context.load_cert_chain(options.tls_cert_file, options.tls_key_file or None)
    return context


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return str(get()) if get is not None else None


def _check_files(options: NatsAuthOptions, where: str, shown: str) -> None:
    for path in (options.nkey_seed_file, options.creds_file, options.tls_ca_file):
        if path and not Path(path).is_file():
            raise ConfigError(f"{where}: {path} is not a file", endpoint=shown)


async def open_client(
    url: str,
    credentials: Credentials,
    options: NatsAuthOptions,
    *,
    name: str,
    where: str,
    error_cb: Callable[[Exception], Awaitable[None]] | None = None,
    disconnected_cb: Callable[[], Awaitable[None]] | None = None,
    pending_size: int = 64 * 1024 * 1024,
) -> Client:
    """A connected nats-py client; ``where`` names the sink or connection in errors.

    The URL may carry ``user:password@`` or ``token@``; ``credentials`` add a user and
    password (``username`` / ``password``) or a token (``api_key``); ``options`` an nkey
    seed file, a creds file and TLS files. Nothing secret is ever in an error.
    """
    shown = redact_endpoint(url)
    try:
        check_url(url)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}", endpoint=shown, hint="nats://127.0.0.1:4222") from None
    _check_files(options, where, shown)
    seen: list[str] = []

    async def on_error(exc: Exception) -> None:
        seen.append(redact_text(str(exc) or type(exc).__name__))
        if error_cb is not None:
            await error_cb(exc)

    kwargs: dict[str, object] = {}
    user = _secret(credentials.username)
    password = _secret(credentials.password)
    token = _secret(credentials.api_key)
    if user is not None:
        kwargs["user"] = user
        kwargs["password"] = password or ""
    if token is not None:
        kwargs["token"] = token
    if options.nkey_seed_file:
        kwargs["nkeys_seed"] = options.nkey_seed_file
    if options.creds_file:
        kwargs["user_credentials"] = options.creds_file
    try:
        tls = _tls(options, url)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}: TLS files: {exc}", endpoint=shown) from None
    if tls is not None:
        kwargs["tls"] = tls
    if disconnected_cb is not None:
        kwargs["disconnected_cb"] = disconnected_cb
    nc = Client()
    try:
        try:
            with anyio.fail_after(options.connect_timeout_s * 2 + 1):
                await nc.connect(
                    [url],
                    name=name,
                    error_cb=on_error,
                    allow_reconnect=False,
                    # with reconnects off nats-py still walks its pool: one more try,
                    # soon, then NoServersError instead of looping
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.05,  # type: ignore[arg-type,unused-ignore]
                    connect_timeout=options.connect_timeout_s,  # type: ignore[arg-type,unused-ignore]
                    pending_size=pending_size,
                    **kwargs,  # type: ignore[arg-type,unused-ignore]
                )
        except BaseException:
            await _discard(nc)
            raise
        return nc
    except TimeoutError:
        raise ConnectionFailed(
            f"{where}: no NATS handshake within {options.connect_timeout_s * 2 + 1:g}s",
            endpoint=shown,
            hint=_HINT_REACH,
        ) from None
    except nats.errors.Error as exc:
        text = redact_text(str(exc) or type(exc).__name__)
        every = "; ".join(dict.fromkeys([*seen, text]))
        if isinstance(exc, nats.errors.AuthorizationError) or "authorization" in every.lower():
            raise AuthenticationError(
                f"{where}: the NATS server refused the login", endpoint=shown, hint=_HINT_AUTH
            ) from None
        raise ConnectionFailed(
            f"{where}: cannot connect to NATS: {every}", endpoint=shown, hint=_HINT_REACH
        ) from None
    except OSError as exc:
        raise ConnectionFailed(
            f"{where}: cannot connect to NATS: {redact_text(str(exc))}",
            endpoint=shown,
            hint=_HINT_REACH,
        ) from None


async def _discard(nc: Client) -> None:
    """Close a client whose connect failed: nats-py leaves a refused link's socket open."""
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(Exception):
            await nc.close()
        transport = getattr(nc, "_transport", None)
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()
                await transport.wait_closed()
