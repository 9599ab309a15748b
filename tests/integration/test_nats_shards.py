"""Three sharded hubs (``hub run --shard I/3``) against three venue simulators, one NATS
sink table in their shared config, and one consumer hub (``protocol = "nats"``,
``md.>``): the consumer receives every tick of every exchange exactly once, under the
exchange's name, and no Gap. All processes, as a user runs them (tests/integration/faults.py)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from hub_core.testing import DATA_TYPES
from tests.integration.faults import (
    CREDENTIALS,
    HUB,
    METRICS_AND_LOGS,
    HubRun,
    Secrets,
    _LineReader,
    _stop,
    hub_run,
    nats_server,
    state_events,
    venue,
    wait_until,
    write_config,
)

NAMES = ["nt_a", "nt_b", "nt_c"]


def _tick_key(e: dict[str, Any]) -> str:
    return json.dumps(e, sort_keys=True)


def _shard(config: Path, index: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], HubRun]:
    import os

    workdir = config.parent / f"shard{index}"
    workdir.mkdir()
    log_path = workdir / "hub-run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                HUB,
                "run",
                str(config),
                "--shard",
                f"{index}/3",
                "--jsonl",
                "--duration",
                "60",
                *METRICS_AND_LOGS,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **env},
        )
    assert proc.stdout is not None
    return proc, HubRun(proc, log_path, _LineReader(proc.stdout))


def test_three_shards_one_merged_feed_every_tick_once(tmp_path: Path) -> None:
    planted = Secrets()
    with ExitStack() as stack:
        url = stack.enter_context(nats_server(tmp_path))
        tables = []
        for name in NAMES:
            workdir = tmp_path / f"venue-{name}"
            workdir.mkdir()
            v = stack.enter_context(venue("ninjatrader", workdir))
            tables.append(
                f'[exchanges.{name}]\nprotocol = "ninjatrader"\nendpoint = "127.0.0.1:{v.port}"\n'
                'symbols = ["ES", "NQ"]\n' + CREDENTIALS.format(name=name)
            )
        sink = textwrap.dedent(
            f"""
            [sinks.fanout]
            kind = "nats"
            url = "{url}"
            options = {{ prefix = "md", heartbeat_ms = 200 }}
            """
        )
        shard_dir = tmp_path / "shards"
        shard_dir.mkdir()
        config = write_config(shard_dir, *tables, sink)
        consumer_dir = tmp_path / "consumer"
        consumer_dir.mkdir()
        source = (
            f'[exchanges.remote]\nprotocol = "nats"\nendpoint = "{url}"\nsymbols = ["md.>"]\n'
            'options = { prefix = "md" }\n'
        )
        consumer = stack.enter_context(hub_run(write_config(consumer_dir, source), planted.env()))
        wait_until(
            "the consumer connected",
            lambda: any(
                e["state"] == "connected" for e in state_events(consumer.events(), "remote")
            ),
        )
        shards = [_shard(config, i, planted.env()) for i in (1, 2, 3)]
        try:
            for name in NAMES:
                consumer.wait_data(20, exchange=name)
            codes = []
            for _, run in shards:
                codes.append(run.stop())  # a clean stop: each sink drains first
        finally:
            for proc, run in shards:
                _stop(proc)
                run.stdout.close()
        published: Counter[str] = Counter()
        owners: dict[str, set[int]] = {}
        for i, (_, run) in enumerate(shards, 1):
            for e in run.events():
                if e["type"] in DATA_TYPES:
                    published[_tick_key(e)] += 1
                    owners.setdefault(e["exchange"], set()).add(i)
        wait_until(
            "every published tick at the consumer",
            lambda: (
                sum(1 for e in consumer.events() if e["type"] in DATA_TYPES)
                >= sum(published.values())
            ),
        )
        received = Counter(_tick_key(e) for e in consumer.events() if e["type"] in DATA_TYPES)
        gaps = [e for e in consumer.events() if e["type"] == "Gap" and e["exchange"] in NAMES]
        assert codes == [0, 0, 0]
    assert owners == {"nt_a": {1}, "nt_b": {2}, "nt_c": {3}}  # each exchange in one shard
    assert received == published  # every tick once, exactly as its shard published it
    assert max(received.values()) == 1
    assert not gaps
