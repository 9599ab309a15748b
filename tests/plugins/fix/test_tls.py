"""FIX over TLS (``fixs://``) through a real ``ExchangeHub`` against the simulator as a
TLS acceptor, with a private CA made by ``trustme``: logon and market data with
``options.ca_file``; without it a certificate-verification error that names the
endpoint and ``ca_file`` and is retried like a network fault (never an auth failure);
a host name the certificate does not name; a plain-TCP client against the TLS port."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
import trustme
from pydantic import ValidationError

from hub_core import (
    BookSnapshot,
    ConfigError,
    ConnectionState,
    ConnectionStateChanged,
    ExchangeConfig,
    ExchangeHub,
    Trade,
    TypedEventBus,
)
from hub_core.registry import ExchangeRegistry
from hub_plugin_fix.connection import SILENT_LOGON_LIMIT
from hub_plugin_fix.options import FixOptions
from hub_plugin_fix.simulator import FixSimulator
from tests.plugins.fix.test_end_to_end import NAME, TIMEOUT, Running, config, start

pytestmark = pytest.mark.anyio


@dataclass
class Pki:
    ca_file: Path
    """The private CA's certificate, PEM: what ``options.ca_file`` points at."""
    server: ssl.SSLContext
    """The simulator's TLS context: a certificate for 127.0.0.1 signed by that CA."""


def make_pki(directory: Path, *names: str) -> Pki:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(server)
    ca_file = directory / "venue-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca_file, server)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path, "127.0.0.1")


@pytest.fixture
async def tls_sim(pki: Pki) -> AsyncIterator[FixSimulator]:
    async with FixSimulator(["ES", "NQ"], rate=200, seed=5, ssl_context=pki.server) as sim:
        yield sim


def states(run: Running) -> list[ConnectionStateChanged]:
    return [e for e in run.rec.events if isinstance(e, ConnectionStateChanged)]


async def test_logon_and_market_data_over_tls_with_ca_file(tls_sim: FixSimulator, pki: Pki) -> None:
    assert tls_sim.endpoint.startswith("fixs://127.0.0.1:")
    cfg = config(tls_sim, ["ES", "NQ"], options={"ca_file": str(pki.ca_file)})
    async with start(cfg) as run:
        await run.trades_for(["ES", "NQ"])
        assert {s.symbol for s in run.rec.of(BookSnapshot)} == {"ES", "NQ"}
        # the ticks are the simulator's: what went through TLS arrived intact
        sent = {(p, q, side) for p, q, side in tls_sim.sent_trades("ES")}
        got = [t for t in run.rec.of(Trade) if t.symbol == "ES"]
        assert got and all((t.price, t.size, t.side) in sent for t in got)
        assert tls_sim.session_count == 1
    # close() logged out over TLS and the venue saw the session end cleanly
    await run.rec.wait_for(lambda: tls_sim.session_count == 0, TIMEOUT, "the logout")
    assert tls_sim.tls_failures == []
    assert [sender for sender, _, _ in tls_sim.logons] == ["HUB"]


async def test_without_ca_file_verification_fails_and_is_retried_not_auth(
    tls_sim: FixSimulator,
) -> None:
    cfg = config(tls_sim, ["ES"])
    async with start(cfg, wait=False) as run:
        await run.state(ConnectionState.RECONNECTING)
        reason = next(e.reason for e in states(run) if e.state == ConnectionState.RECONNECTING)
        # the reason is the error's own message and hint: the event carries the
        # exchange and the endpoint beside it
        assert reason.startswith("TLS certificate verification failed"), reason
        assert "options.ca_file" in reason
        # retried with backoff like a network fault, past the limit after which
        # silent hang-ups on Logon count as a refusal: never AUTH_FAILED
        await run.rec.wait_for(
            lambda: tls_sim.connections_accepted > SILENT_LOGON_LIMIT + 1,
            TIMEOUT,
            "more connection attempts",
        )
        seen = {e.state for e in states(run)}
        assert ConnectionState.AUTH_FAILED not in seen and ConnectionState.DEAD not in seen
        assert run.hub.connection_status() == {NAME: False}
        assert tls_sim.logons == []
    await run.rec.wait_for(lambda: len(tls_sim.tls_failures) >= 2, TIMEOUT, "handshake failures")
    # the client hung up in the handshake (with an unknown-CA alert, or without one)
    assert all(
        "closed the connection" in why or "UNKNOWN_CA" in why for why in tls_sim.tls_failures
    ), tls_sim.tls_failures


async def test_a_certificate_for_another_host_fails_even_with_ca_file(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "fix.venue.test")
    async with FixSimulator(["ES"], rate=50, ssl_context=pki.server) as sim:
        cfg = config(sim, ["ES"], options={"ca_file": str(pki.ca_file)})
        async with start(cfg, wait=False) as run:
            await run.state(ConnectionState.RECONNECTING)
            reason = next(e.reason for e in states(run) if e.state == ConnectionState.RECONNECTING)
            assert "certificate verification failed" in reason
            assert "mismatch, certificate is not valid for '127.0.0.1'" in reason
            assert str(pki.ca_file) in reason
        assert sim.logons == []


async def test_a_plain_tcp_client_against_the_tls_port_fails_cleanly(
    tls_sim: FixSimulator, pki: Pki
) -> None:
    plain = tls_sim.endpoint.replace("fixs://", "fix://")
    cfg = ExchangeConfig.fix(
        NAME,
        plain,
        symbols=["ES"],
        options={"logon_timeout_s": 2},
        reconnect_delay_ms=20,
        reconnect_max_delay_ms=40,
    )
    async with start(cfg, wait=False) as run:
        # the acceptor hangs up on a Logon that is not a TLS ClientHello; three in a
        # row stop the retries (the silent-refusal rule) with a hint to use fixs://
        await run.state(ConnectionState.AUTH_FAILED)
        reason = states(run)[-1].reason
        assert "without answering our Logon" in reason and "use fixs://" in reason
        await anyio.sleep(0.3)
        assert tls_sim.connections_accepted == SILENT_LOGON_LIMIT
    assert len(tls_sim.tls_failures) == SILENT_LOGON_LIMIT
    assert all("WRONG_VERSION_NUMBER" in why for why in tls_sim.tls_failures)
    assert tls_sim.logons == []
    # the acceptor is unharmed: a TLS client logs on and gets data
    async with start(config(tls_sim, ["ES"], options={"ca_file": str(pki.ca_file)})) as run:
        await run.trades_for(["ES"])


async def test_ca_file_with_a_plain_endpoint_is_a_config_error(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, "127.0.0.1")
    async with FixSimulator(["ES"], rate=50) as sim:
        cfg = config(sim, ["ES"], options={"ca_file": str(pki.ca_file)})
        async with start(cfg, wait=False) as run:
            # an option the plugin cannot use is final: dead, never retried
            await run.state(ConnectionState.DEAD)
            reason = states(run)[-1].reason
            assert "plain TCP" in reason and "fixs://" in reason
            assert ConnectionState.RECONNECTING not in [e.state for e in states(run)]
        assert sim.connections_accepted == 0


async def test_an_unusable_ca_file_is_refused_at_configuration(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match=r"nowhere\.pem.*does not exist"):
        FixOptions.model_validate({"ca_file": str(missing)})
    with pytest.raises(ValidationError, match=r"notes\.txt.*no usable PEM certificate"):
        FixOptions.model_validate({"ca_file": str(not_pem)})
    assert FixOptions().ca_file is None
    registry = ExchangeRegistry()
    import hub_plugin_fix

    registry.register(hub_plugin_fix, name="fix")
    cfg = ExchangeConfig.fix(NAME, "fixs://127.0.0.1:9", options={"ca_file": str(missing)})
    async with ExchangeHub(TypedEventBus(), registry=registry) as hub:
        with pytest.raises(ConfigError, match=r"exchanges\.cme\.options\.ca_file"):
            await hub.connect_exchange(NAME, cfg)


async def test_fixs_against_a_plain_tcp_port_names_the_tls_handshake() -> None:
    async with FixSimulator(["ES"], rate=50) as sim:
        tls_endpoint = sim.endpoint.replace("fix://", "fixs://")
        cfg = ExchangeConfig.fix(NAME, tls_endpoint, symbols=["ES"], connect_timeout_ms=300)
        async with start(cfg, wait=False) as run:
            await run.state(ConnectionState.RECONNECTING)
            reason = next(e.reason for e in states(run) if e.state == ConnectionState.RECONNECTING)
            # our own timeout, cut to end just inside the supervisor's connect bound
            assert re.search(r"TLS handshake timed out after 0\.[0-9]+s", reason), reason
            assert "speaks TLS on this port" in reason
        assert sim.logons == []
