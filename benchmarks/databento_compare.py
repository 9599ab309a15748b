"""Databento: the plugin's record path against the official client's, same bytes, same run.

    python benchmarks/databento_compare.py        # or compare.py --only databento

1. In process, one GLBX-shaped stream (50 instruments; 25 % trades, 60 % mbp-1, 15 %
   mbp-10, as databento-dbn builds them; read in 64 KiB buffers):
   - ours: the connection's stream path (metadata header off, the stream tail kept for
     gap-free reconnect, the core's compiled decoder, ticks to one no-op subscriber per
     tick type);
   - databento-dbn's ``DBNDecoder`` decoding the same bytes to record objects;
   - the official client's own path: its ``DatabentoLiveProtocol`` decoding and handing
     each record to a no-op callback.
2. End to end over loopback: ``hub sim databento -o bench=true`` (a separate process
   sending pre-built batches as fast as the socket takes them), then the hub's
   connection to a no-op subscriber, and the official ``databento.Live`` client to a
   no-op callback, each for the same number of records.

Ratios are ours / theirs (above 1: ours is faster). Nothing here is asserted.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import databento as db
import databento_dbn as dbn
from databento.live.protocol import DatabentoLiveProtocol

from hub_core import BookSnapshot, ExchangeConfig, Quote, Trade, TypedEventBus
from hub_core.hub import tune_gc
from hub_core.processor import EventProcessor
from hub_plugin_databento import DatabentoFactory

N_RECORDS = 300_000
N_INSTRUMENTS = 50
CHUNK = 64 * 1024
E2E_RECORDS = 1_000_000
KEY = "db-" + "bench" * 5 + "key01"[:4]

_SIDE = {k: dbn.Side.from_str(k) for k in "AB"}
_ACTION = {k: dbn.Action.from_str(k) for k in "ATM"}


def _pair(px: int) -> Any:
    return dbn.BidAskPair(px, px + 250_000_000, 10 + px % 7, 12 + px % 5, 3, 4)


def glbx_stream(n: int = N_RECORDS, mbp10: bool = True) -> bytes:
    """A metadata header, a mapping per instrument, then ``n`` market records: 25 %
    trades, then mbp-1, and with ``mbp10`` 15 % mbp-10 (else those are mbp-1 too)."""
    raw, iid_type = dbn.SType.from_str("raw_symbol"), dbn.SType.from_str("instrument_id")
    out = [dbn.Metadata("GLBX.MDP3", 0, raw, iid_type, None).encode()]
    for i in range(N_INSTRUMENTS):
        out.append(
            bytes(
                dbn.SymbolMappingMsg(
                    1, 1000 + i, 0, raw, f"SYM{i}Z6", iid_type, str(1000 + i), 0, 2**64 - 1
                )
            )
        )
    ts = 1_790_000_000_000_000_000
    for i in range(n):
        iid = 1000 + i % N_INSTRUMENTS
        px = (6000 + i % 40) * 1_000_000_000
        kind = i % 20
        if kind < 5:
            rec: Any = dbn.TradeMsg(
                1, iid, ts + i, px, 1 + i % 4, _ACTION["T"], _SIDE["B"], 0, ts + i + 900,
                flags=128, sequence=i + 1,
            )  # fmt: skip
        elif kind < 17 or not mbp10:
            rec = dbn.MBP1Msg(
                1, iid, ts + i, px, 3, _ACTION["A"], _SIDE["B"], 0, ts + i + 900,
                flags=128, sequence=i + 1, levels=_pair(px),
            )  # fmt: skip
        else:
            rec = dbn.MBP10Msg(
                1, iid, ts + i, px, 3, _ACTION["M"], _SIDE["A"], 0, ts + i + 900,
                flags=128, sequence=i + 1,
                levels=[_pair(px - k * 250_000_000) for k in range(10)],
            )  # fmt: skip
        out.append(bytes(rec))
    return b"".join(out)


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def _noop(_: object) -> None:
    pass


def _bus() -> TypedEventBus:
    bus = TypedEventBus()
    for kind in (Trade, Quote, BookSnapshot):
        bus.subscribe(kind, _noop)
    return bus


def ours_in_process(pieces: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        sink = EventProcessor(_bus()).sink_for("glbx")
        cfg = ExchangeConfig.databento("GLBX.MDP3", api_key=KEY, endpoint="127.0.0.1:1")
        conn = DatabentoFactory().create(cfg, sink)
        feed = conn._on_stream  # the protocol's callback for every read once streaming
        for piece in pieces:
            feed(piece)

    return run


def dbn_decoder(pieces: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        decoder = dbn.DBNDecoder()
        for piece in pieces:
            decoder.write(piece)
            decoder.decode()

    return run


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Callback(DatabentoLiveProtocol):
    def received_record(self, record: Any) -> None:
        _noop(record)


def official_in_process(pieces: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        proto = _Callback(KEY, "GLBX.MDP3")
        proto.connection_made(_Transport())  # type: ignore[arg-type]
        # the client's own record path once streaming (what buffer_updated calls)
        process = proto._process_dbn
        for piece in pieces:
            process(piece)

    return run


# -- end to end ---------------------------------------------------------------------------
def _start_sim() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub_core.cli", "sim", "databento", "-o", "bench=true",
         "--symbols", ",".join(f"ESZ{i}" for i in range(5))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.rsplit(":", 1)[1])


async def _ours_e2e(port: int, n: int) -> float:
    import anyio

    counted = 0
    done = anyio.Event()
    t_first = 0.0

    def count(_: object) -> None:
        nonlocal counted, t_first
        if not counted:
            t_first = time.perf_counter()
        counted += 1
        if counted == n:
            done.set()

    bus = TypedEventBus()
    for kind in (Trade, Quote, BookSnapshot):
        bus.subscribe(kind, count)
    sink = EventProcessor(bus).sink_for("glbx")
    cfg = ExchangeConfig.databento(
        "GLBX.MDP3", api_key=KEY, endpoint=f"127.0.0.1:{port}",
        options={"schemas": ["trades", "mbp-1", "mbp-10"]},
    )  # fmt: skip
    conn = DatabentoFactory().create(cfg, sink)
    await conn.connect(cfg.endpoint)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await conn.subscribe([f"ESZ{i}" for i in range(5)])
        await done.wait()
        elapsed = time.perf_counter() - t_first
        await conn.close()
        tg.cancel_scope.cancel()
    return n / elapsed


def _theirs_e2e(port: int, n: int) -> float:
    counted = 0
    done = threading.Event()
    t_first = 0.0

    def count(record: object) -> None:
        nonlocal counted, t_first
        if isinstance(record, dbn.TradeMsg | dbn.MBP1Msg | dbn.MBP10Msg):
            if not counted:
                t_first = time.perf_counter()
            counted += 1
            if counted == n:
                done.set()

    client = db.Live(key=KEY, gateway="127.0.0.1", port=port)
    client.add_callback(count)
    for schema in ("trades", "mbp-1", "mbp-10"):
        client.subscribe("GLBX.MDP3", schema, [f"ESZ{i}" for i in range(5)])
    client.start()
    done.wait(120)
    elapsed = time.perf_counter() - t_first
    client.terminate()
    return n / elapsed


def bench_databento(report: Callable[..., None], result: type, median_time: Any) -> None:
    """Both sections; ``report(result(...))`` per figure (see compare.py)."""
    tune_gc()
    for label, mbp10 in (("trades + mbp-1", False), ("+ 15 % mbp-10", True)):
        pieces = _chunks(glbx_stream(mbp10=mbp10))
        n = N_RECORDS
        gc.collect()
        ours = n / median_time(ours_in_process(pieces), 5)
        dbn_rate = n / median_time(dbn_decoder(pieces), 5)
        official = n / median_time(official_in_process(pieces), 3)
        report(
            result(
                f"databento: DBN -> hub ticks, {label}", ours, "rec/s",
                "databento-dbn DBNDecoder (records only)", dbn_rate, ours / dbn_rate,
                ">= 3 M/s",
            )
        )  # fmt: skip
        report(
            result(
                f"databento: the same vs the official client, {label}", ours, "rec/s",
                "DatabentoLiveProtocol -> callback", official, ours / official, ">= 1.0",
            )
        )  # fmt: skip
    proc, port = _start_sim()
    try:
        ours_e2e = max(asyncio.run(_ours_e2e(port, E2E_RECORDS)) for _ in range(3))
        theirs_e2e = max(_theirs_e2e(port, E2E_RECORDS) for _ in range(3))
    finally:
        proc.terminate()
        proc.wait(10)
    report(
        result(
            "databento: gateway -> hub -> subscriber (loopback)", ours_e2e, "rec/s",
            "official Live client -> callback", theirs_e2e, ours_e2e / theirs_e2e,
            ">= 1 M/s, >= 1.0",
        )
    )  # fmt: skip


if __name__ == "__main__":
    from compare import Result, median_time, report

    bench_databento(report, Result, median_time)
