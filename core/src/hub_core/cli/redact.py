"""Keep secrets out of what the CLI prints.

Credentials never reach the CLI's output (they are ``SecretStr`` and only the
names of their environment variables are shown), but an endpoint URL can
carry a password (``wss://user:pass@host``) or a token in its query string,
and a plugin's ``options`` table can hold a key-like value. Both are masked
before anything is printed, served as a metric label, or logged.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Option and query keys whose values are never shown.
_SECRET_KEY = re.compile(
    r"passw|passphrase|secret|token|api_?key|private_?key|(^|[_-])key($|[_-])"
    r"|auth|signature|credential|cookie|bearer",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    """True for a key whose value may be a secret (``api_key``, ``token`` ...)."""
    return bool(_SECRET_KEY.search(key))


def redact_endpoint(endpoint: str) -> str:
    """``endpoint`` with any password and secret-looking query values masked."""
    if "://" not in endpoint:
        # host:port, the common case; a "user:pass@host:port" form is masked too
        if "@" in endpoint:
            return MASK + "@" + endpoint.rsplit("@", 1)[1]
        return endpoint
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_key(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_options(options: dict[str, object]) -> dict[str, object]:
    """A copy of a plugin ``options`` table with secret-looking values masked."""
    out: dict[str, object] = {}
    for key, value in options.items():
        if is_secret_key(key):
            out[key] = MASK
        elif isinstance(value, dict):
            out[key] = redact_options({str(k): v for k, v in value.items()})
        else:
            out[key] = value
    return out


def one_line(text: str) -> str:
    """Collapse whitespace so an error is exactly one line."""
    return " ".join(text.split())
