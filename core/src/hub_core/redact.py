"""Keep secrets out of everything the hub shows: the one place endpoints are redacted.

Credentials never reach any output (they are ``SecretStr`` and only the names
of their environment variables are shown), but an endpoint URL can carry a
password (``wss://user:pass@host``) or a token in its query string, and a
plugin's ``options`` table can hold a key-like value. Every event, log line,
error message, metric label and CLI output goes through these functions; the
raw endpoint stays inside the connection that dials it.
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


# A URL inside free text: scheme://, then everything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>]+""")
# user:password@host without a scheme (the host:port endpoint form)
_USERINFO_IN_TEXT = re.compile(r"""(?<![\w/@])[^\s'"<>/@:]+:[^\s'"<>/@]+@(?=[\w\[])""")


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (passwords and secret-looking query values).

    For messages that may quote an endpoint: a library's exception text, a
    plugin's error, a log line.
    """
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: _redact_url_in_text(m.group(0)), text)
    if "@" in text:
        text = _USERINFO_IN_TEXT.sub(MASK + "@", text)
    return text


def _redact_url_in_text(url: str) -> str:
    # trailing punctuation belongs to the sentence, not the URL
    tail = ""
    while url and url[-1] in ".,;:)]}":
        tail = url[-1] + tail
        url = url[:-1]
    return redact_endpoint(url) + tail


def endpoint_secrets(endpoint: str) -> list[str]:
    """The secret parts of an endpoint URL: its password and secret-looking query values."""
    found: list[str] = []
    if "://" not in endpoint:
        if "@" in endpoint:
            userinfo = endpoint.rsplit("@", 1)[0]
            found.append(userinfo.split(":", 1)[1] if ":" in userinfo else userinfo)
        return [f for f in found if f]
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return [endpoint]
    if parts.password:
        found.append(parts.password)
    if "@" in parts.netloc and not parts.password and parts.username:
        found.append(parts.username)  # a bare token in the user part
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if is_secret_key(key) and value:
            found.append(value)
    return found


class SecretMask:
    """Known secret values, masked wherever they appear in a text.

    The CLI registers every credential and every endpoint secret of its
    config here; its log formatter and error line pass through ``mask``, so
    even a library's message that quotes a password is caught.
    """

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, *secrets: str) -> None:
        """Remember ``secrets`` (values shorter than 4 characters are too common to mask)."""
        for secret in secrets:
            if len(secret) >= 4 and secret not in self._secrets:
                self._secrets.append(secret)
        # longest first, so a secret that contains another is masked whole
        self._secrets.sort(key=len, reverse=True)

    def mask(self, text: str) -> str:
        """``text`` with URLs redacted and every known secret replaced by ``***``."""
        text = redact_text(text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


SECRETS = SecretMask()
"""The process-wide mask the CLI fills from its config."""


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
