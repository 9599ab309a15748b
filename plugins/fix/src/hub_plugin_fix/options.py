"""``options`` of a ``protocol = "fix"`` connection (validated by pydantic).

Example (TOML)::

    [exchanges.cme]
    protocol = "fix"
    endpoint = "fix://fix.example.com:9878"      # fixs:// for FIX over TLS
    # with fixs:// and a venue on a private CA: options.ca_file = "/etc/hub/venue-ca.pem"
    symbols = ["ESZ5", "NQZ5"]
    options = { begin_string = "FIX.4.4", sender_comp_id = "HUB", target_comp_id = "VENUE",
                heartbeat_interval_s = 30, market_depth = 10,
                entry_types = ["bid", "offer", "trade"] }
    # sequence numbers: by default in ~/.local/state/hub/fix/ (a restart continues
    # the session); store_path = "/var/lib/hub/fix" to choose, ":memory:" for none

    [exchanges.cme.credentials]                   # Username (553) / Password (554), optional
    username_env = "CME_FIX_USER"
    password_env = "CME_FIX_PASSWORD"
"""

from __future__ import annotations

import ssl
from typing import Literal

from pydantic import Field, field_validator

from hub_core.plugin import PluginOptions
from hub_plugin_fix.messages import ENTRY_TYPE_CODES

_COMP_ID = r"^[\x21-\x7e]{1,64}$"


class FixOptions(PluginOptions):
    """Protocol options of a FIX market-data session."""

    begin_string: Literal["FIX.4.2", "FIX.4.4", "FIXT.1.1"] = "FIX.4.4"
    """BeginString (8). ``FIXT.1.1`` logs on with DefaultApplVerID 9 (FIX.5.0SP2)."""
    sender_comp_id: str = Field(default="HUB", pattern=_COMP_ID)
    """SenderCompID (49): who we are, as agreed with the venue."""
    target_comp_id: str = Field(default="VENUE", pattern=_COMP_ID)
    """TargetCompID (56): the venue. Its messages must carry it as their SenderCompID."""
    heartbeat_interval_s: int = Field(default=30, ge=1, le=3600)
    """HeartBtInt (108) asked for in the Logon; the venue's answer wins."""
    reset_on_logon: bool = False
    """Log on with ResetSeqNumFlag (141=Y): both sides start again at sequence 1.
    Off: the session continues from the stored sequence numbers."""
    market_depth: int = Field(default=10, ge=0, le=10_000)
    """MarketDepth (264): 0 = full book, 1 = top of book, N = best N levels."""
    entry_types: list[str] = Field(
        default_factory=lambda: ["bid", "offer", "trade"], min_length=1, validate_default=True
    )
    """MDEntryType (269) to request: ``bid``, ``offer``, ``trade`` (or their FIX codes
    ``0``, ``1``, ``2``)."""
    store_path: str | None = None
    """Directory for the sequence-number file of this session
    (``<begin>-<sender>-<target>.seqnums``), so a restart continues the session.
    Unset (the default): the per-user state directory, ``$XDG_STATE_HOME/hub/fix/`` or
    ``~/.local/state/hub/fix/``, one file per session and venue address
    (``<begin>-<sender>-<target>-<host>_<port>.seqnums``). ``":memory:"``: in memory
    only, for the life of the hub (a restarted hub then starts at 1 and needs
    ``reset_on_logon`` or a venue that resets daily)."""
    logon_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """How long the Logon reply may take."""
    max_message_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    """Largest BodyLength accepted; a longer message is counted as malformed."""
    ca_file: str | None = None
    """PEM bundle of the CA certificate(s) that sign the venue's TLS certificate, for a
    ``fixs://`` venue on a private CA. It replaces the system's trusted CAs for this
    connection; the certificate and its host name are always verified (there is no
    option to turn that off). Unset: the system's trusted CAs. Only with ``fixs://``."""

    @field_validator("ca_file")
    @classmethod
    def _loadable_ca_file(cls, value: str | None) -> str | None:
        if value is None:
            return None
        tls_context(value)  # fail at configuration time, not at the first connect
        return value

    @field_validator("entry_types")
    @classmethod
    def _known_entry_types(cls, value: list[str]) -> list[str]:
        codes = set(ENTRY_TYPE_CODES.values())
        out: list[str] = []
        for item in value:
            code = ENTRY_TYPE_CODES.get(item.lower(), item)
            if code not in codes:
                raise ValueError(f"unknown entry type {item!r}: use bid, offer, trade (or 0, 1, 2)")
            if code not in out:
                out.append(code)
        return out

    @property
    def entry_codes(self) -> list[str]:
        """``entry_types`` as MDEntryType codes, in order, without repeats."""
        return list(self.entry_types)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The client TLS context of a ``fixs://`` connection: certificate and host name
    verified against ``ca_file`` (a PEM CA bundle) or, without it, the system's trusted
    CAs. Raises ``ValueError`` naming the file when it cannot be used."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise ValueError(f"CA file {ca_file!r} does not exist") from None
    except ssl.SSLError as exc:
        raise ValueError(
            f"CA file {ca_file!r} holds no usable PEM certificate ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read CA file {ca_file!r}: {exc.strerror or exc}") from None


__all__ = ["FixOptions", "tls_context"]
