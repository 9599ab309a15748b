"""The simulated remote hub (``hub sim nats``, ``hub demo``), the factories' checks."""

from __future__ import annotations

import logging
import socket

import anyio
import pytest

import hub_plugin_nats.factory as factory_module
from hub_core import ConfigError, ExchangeConfig, ExchangeHub, Quote, SinkConfig, Trade
from hub_plugin_nats import NatsSinkFactory, NatsSourceFactory
from hub_plugin_nats.simulator import RemoteHubSimulator, demo_config

from .conftest import Collected, NatsServer, registry, until


@pytest.mark.anyio
async def test_the_simulated_hub_feeds_a_source(nats_server: NatsServer) -> None:
    sim = RemoteHubSimulator(["AAA", "BBB"], rate=200, port=nats_server.port, prefix="md")
    ready: list[tuple[str, int]] = []
    async with ExchangeHub(registry=registry()) as hub, anyio.create_task_group() as tg:
        got = Collected(hub)
        cfg = demo_config(f"127.0.0.1:{nats_server.port}", [])
        await hub.connect_exchange("nats", cfg, timeout=10)
        tg.start_soon(sim.serve, lambda h, p: ready.append((h, p)))
        await until(lambda: len(got.of(Trade, exchange="sim_remote")) >= 10, what="trades")
        await until(lambda: len(got.of(Quote, exchange="sim_remote")) >= 10, what="quotes")
        tg.cancel_scope.cancel()
    assert ready == [("127.0.0.1", nats_server.port)]
    assert {t.symbol for t in got.market("sim_remote")} == {"AAA", "BBB"}


def test_no_server_no_simulator_and_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = int(s.getsockname()[1])
    monkeypatch.setattr(factory_module, "DEFAULT_PORT", closed)
    with caplog.at_level(logging.WARNING):
        assert NatsSourceFactory().simulator() is None
    (line,) = [r.getMessage() for r in caplog.records]
    assert "no nats-server" in line and "skipped" in line


def test_urls_are_checked_before_anything_dials() -> None:
    source = NatsSourceFactory()
    source.check_endpoint("nats://127.0.0.1:4222")
    source.check_endpoint("tls://a.example:4443")
    bad_urls = [
        "",
        "127.0.0.1:4222",
        "http://x:1",
        "nats://:4222",
        "nats://host",
        "nats://a:1,nats://b:2",
    ]
    for bad in bad_urls:
        with pytest.raises(ValueError):
            source.check_endpoint(bad)
    sink = NatsSinkFactory()
    sink.check(SinkConfig(kind="nats", name="s", url="nats://127.0.0.1:4222"))
    with pytest.raises(ConfigError, match="names no port") as err:
        sink.check(SinkConfig(kind="nats", name="s", url="nats://u:Pw-secret-1@host"))  # no port
    assert "Pw-secret-1" not in str(err.value)


def test_options_refuse_what_cannot_work() -> None:
    from pydantic import ValidationError

    from hub_plugin_nats.options import NatsSinkOptions, NatsSourceOptions

    with pytest.raises(ValidationError):
        NatsSinkOptions(prefix="md.*")
    with pytest.raises(ValidationError):
        NatsSinkOptions.model_validate({"unknown": 1})
    src = NatsSourceOptions.model_validate(
        {"jetstream": True, "start_time": "2026-12-04T20:00:00Z"}
    )
    assert src.start_time is not None and src.start_time.year == 2026
    assert ExchangeConfig(protocol="nats", endpoint="nats://127.0.0.1:4222").protocol == "nats"


@pytest.mark.anyio
async def test_a_subject_that_is_not_one_is_refused_before_anything_is_sent(
    nats_server: NatsServer,
) -> None:
    from hub_core import SubscriptionError
    from hub_plugin_nats import NatsSourceConnection
    from hub_plugin_nats.options import NatsSourceOptions

    async with ExchangeHub(registry=registry()) as hub:
        sink = hub._processor.sink_for("remote")
        cfg = ExchangeConfig(protocol="nats", endpoint=nats_server.url)
        conn = NatsSourceConnection(cfg, sink, NatsSourceOptions())
        await conn.connect(nats_server.url)
        try:
            with pytest.raises(SubscriptionError, match="empty token"):
                await conn.subscribe(["md.ok.>", "md..x"])
            with pytest.raises(TypeError):
                await conn.subscribe("md.>")
            await conn.subscribe(["md.a.>", "md.a.>"])
            assert conn.health().detail.startswith("2 subscriptions")  # heartbeats + md.a.>
        finally:
            await conn.close()
        assert not conn.health().connected
