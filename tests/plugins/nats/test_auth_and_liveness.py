"""Login by token and over TLS against a real nats-server, and a publisher whose
heartbeats stop being reported stale on its exchanges (and back when it returns)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trustme

from hub_core import ConnectionStateChanged, ExchangeConfig, ExchangeHub, SinkConfig, Trade
from hub_plugin_nats.options import NatsSinkOptions
from hub_plugin_nats.sink import NatsSink

from .conftest import Collected, NatsServer, registry, until

pytestmark = pytest.mark.anyio
S = 1_000_000_000
TOKEN = "tok-Secret-7781zz"


async def _round_trip(url: str, options: dict[str, object], **source: object) -> Collected:
    async with ExchangeHub(registry=registry()) as b:
        got = Collected(b)
        await b.connect_exchange(
            "remote",
            ExchangeConfig(
                protocol="nats",
                endpoint=url,
                symbols=["au.>"],
                options={"prefix": "au", **options},
                **source,  # type: ignore[arg-type]
            ),
            timeout=10,
        )
        sink = NatsSink(
            SinkConfig(kind="nats", name="s", url=url, **source),  # type: ignore[arg-type]
            NatsSinkOptions(prefix="au", **options),  # type: ignore[arg-type]
        )
        await sink.open()
        try:
            await sink.write([Trade("x", "A", S, S, "B", 1, 2, 3, "")])
            await until(lambda: len(got.market("x")) == 1, what="the trade")
        finally:
            await sink.close()
    return got


async def test_a_token_in_credentials_or_in_the_url(tmp_path: Path) -> None:
    from hub_core import Credentials

    server = NatsServer(tmp_path / "js", "--auth", TOKEN)
    try:
        got = await _round_trip(server.url, {}, credentials=Credentials(api_key=TOKEN))
        assert got.market("x")[0].sequence == 3
        got = await _round_trip(f"nats://{TOKEN}@127.0.0.1:{server.port}", {})
        assert got.market("x")[0].sequence == 3
        shown = [str(e.endpoint) for e in got.of(ConnectionStateChanged)]
        assert shown and all(TOKEN not in s for s in shown)
    finally:
        server.stop()


async def test_tls_with_the_servers_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    server = NatsServer(
        tmp_path / "js", "--tls", "--tlscert", str(cert_file), "--tlskey", str(key_file)
    )
    try:
        url = f"tls://127.0.0.1:{server.port}"
        got = await _round_trip(url, {"tls_ca_file": str(ca_file)})
        assert [t.symbol for t in got.market("x")] == ["A"]
    finally:
        server.stop()


async def test_a_silent_publisher_is_stale_and_back(nats_server: NatsServer) -> None:
    async with ExchangeHub(registry=registry()) as b:
        got = Collected(b)
        await b.connect_exchange(
            "remote",
            ExchangeConfig(
                protocol="nats",
                endpoint=nats_server.url,
                symbols=["lv.>"],
                options={"prefix": "lv", "stale_factor": 3},
            ),
            timeout=10,
        )
        sink = NatsSink(
            SinkConfig(kind="nats", name="s", url=nats_server.url),
            NatsSinkOptions(prefix="lv", heartbeat_ms=100, publisher="pub-1"),
        )
        await sink.open()
        try:
            await sink.write([Trade("x", "A", S, S, "B", 1, 2, 3, "")])
            await until(lambda: len(got.market("x")) == 1, what="the trade")
            await asyncio.sleep(0.3)  # heartbeats seen
            # the publisher freezes: its heartbeats stop (its link stays up)
            assert sink._heartbeats is not None
            sink._heartbeats.cancel()

            def states() -> list[str]:
                return [e.state for e in got.of(ConnectionStateChanged, exchange="x")]

            await until(lambda: "stale" in states(), what="the publisher stale")
            stale = [e for e in got.of(ConnectionStateChanged, exchange="x")][-1]
            assert "pub-1" in stale.reason
            sink._heartbeats = asyncio.create_task(sink._beat())
            await until(lambda: states()[-1:] == ["connected"], what="the publisher back")
        finally:
            await sink.close()


async def test_an_nkey_seed_file(tmp_path: Path) -> None:
    import os

    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    conf = tmp_path / "server.conf"
    conf.write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    server = NatsServer(tmp_path / "js", "-c", str(conf))
    try:
        got = await _round_trip(server.url, {"nkey_seed_file": str(seed_file)})
        assert [t.sequence for t in got.market("x")] == [3]
    finally:
        server.stop()


async def test_a_quiet_sink_reopens_its_link_and_keeps_beating(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js")
    try:
        async with ExchangeHub(registry=registry()) as b:
            got = Collected(b)
            await b.connect_exchange(
                "remote",
                ExchangeConfig(
                    protocol="nats",
                    endpoint=server.url,
                    symbols=["q.>"],
                    options={"prefix": "q"},
                    reconnect_delay_ms=50,
                    reconnect_max_delay_ms=200,
                ),
                timeout=10,
            )
            sink = NatsSink(
                SinkConfig(kind="nats", name="s", url=server.url),
                NatsSinkOptions(prefix="q", heartbeat_ms=100, publisher="quiet"),
            )
            await sink.open()
            try:
                await sink.write([Trade("x", "A", S, S, "B", 1, 2, 1, "")])
                await until(lambda: len(got.market("x")) == 1, what="the first trade")
                server.stop()  # no batch comes while it is down, nor after
                await asyncio.sleep(0.5)
                server.start()
                await until(lambda: sink.stats()["quiet_reopens"] >= 1, what="the reopen")
                beats = sink.stats()["heartbeats"]
                await until(lambda: sink.stats()["heartbeats"] > beats + 3, what="heartbeats")
                # the link the heartbeat reopened carries the next batch as it is
                await sink.write([Trade("x", "A", S, S, "B", 1, 2, 2, "")])
                await until(lambda: len(got.market("x")) == 2, seconds=15, what="the next trade")
            finally:
                await sink.close()
    finally:
        server.stop()
    assert [t.sequence for t in got.market("x")] == [1, 2]
