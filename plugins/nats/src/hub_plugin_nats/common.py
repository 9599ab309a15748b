"""What a NATS sink's and a NATS source's ``options`` share: the subject prefix, how to
log in, TLS. (Its own module: the options models of ``options.py`` are the tables the
configuration reference lists.)"""

from __future__ import annotations

from pydantic import Field, field_validator

from hub_core.plugin import PluginOptions
from hub_plugin_nats.codec import check_prefix


class NatsAuthOptions(PluginOptions):
    """What both sides share: how to log in and the subject prefix."""

    prefix: str = "md"
    """The subjects' first token(s): ticks travel on ``<prefix>.<exchange>.<type>.<symbol>``,
    heartbeats on ``<prefix>._hb.<publisher>``."""
    nkey_seed_file: str = ""
    """A file holding an NKey seed (``SU...``) to log in with; the seed is never logged."""
    creds_file: str = ""
    """A NATS ``.creds`` file (user JWT and NKey seed) to log in with."""
    tls_ca_file: str = ""
    """A CA bundle to verify the server's certificate with (``tls://`` URLs; default: the
    system's)."""
    tls_cert_file: str = ""
    """A client certificate for mutual TLS (with ``tls_key_file``)."""
    tls_key_file: str = ""
    """The private key of ``tls_cert_file``."""
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """How long the TCP (and TLS) connect and the server's INFO/CONNECT exchange may take."""

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_prefix(value)
