"""WebSocket end to end over loopback: how much of a bare client's frame rate the hub keeps.

Two sources, each in its own process, send Binance trade messages as fast as
they can after acknowledging the SUBSCRIBE:

- ``venue``: a ``websockets`` server sending one ``await ws.send(text)`` per
  message, as the simulator (``hub sim websocket``) does. This is the issue's
  measurement, "simulator -> subscriber callback": how much of what a
  Python venue delivers the hub keeps.
- ``blast``: a raw-socket server writing pre-framed messages in 500 kB
  writes. No Python venue sends this fast; it measures the client's ceiling.

Each feeds, in turn:

- a bare ``websockets`` client that only counts ``await ws.recv()``;
- a bare ``picows`` client that only counts frames (it never touches a payload);
- the hub (websocket plugin, binance dialect) with each transport, counting
  ``Trade`` ticks delivered to one subscriber.

    python benchmarks/ws_e2e_compare.py        # or compare.py --only ws-e2e
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio

from hub_core import ExchangeConfig, ExchangeHub, Trade, TypedEventBus
from hub_core.registry import ExchangeRegistry

SECONDS = 2.0
ROUNDS = 5
BLAST = r"""
import asyncio, base64, hashlib, json, struct, sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

def frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x80 | opcode, n]) + payload
    return bytes([0x80 | opcode, 126]) + struct.pack("!H", n) + payload

msgs = []
for i in range(4000):
    sym = ("BTCUSDT", "ETHUSDT")[i % 2]
    msgs.append(frame((
        '{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%.8f","q":"%.8f","T":%d,"m":%s,"M":true}'
        % (1700000000000 + i, sym, 3000000000 + i, 60000 + (i % 997) / 100,
           (1 + i % 250) / 1000, 1700000000000 + i, "true" if i % 3 else "false")
    ).encode()))
BLOB = b"".join(msgs)

async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i % 4]
    return b0 & 0x0F, bytes(data)

async def drain_input(reader):
    try:
        while True:
            await read_frame(reader)
    except Exception:
        pass

async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while True:
        op, data = await read_frame(reader)
        if op == 1 and b"SUBSCRIBE" in data:
            req = json.loads(data)
            writer.write(frame(json.dumps({"result": None, "id": req["id"]}).encode()))
            break
    asyncio.ensure_future(drain_input(reader))
    try:
        while True:
            writer.write(BLOB)
            await writer.drain()
    except Exception:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


VENUE = r"""
import asyncio, json
from websockets.asyncio.server import serve

MSGS = [
    '{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%.8f","q":"%.8f","T":%d,"m":%s,"M":true}'
    % (1700000000000 + i, ("BTCUSDT", "ETHUSDT")[i % 2], 3000000000 + i,
       60000 + (i % 997) / 100, (1 + i % 250) / 1000, 1700000000000 + i,
       "true" if i % 3 else "false")
    for i in range(4000)
]

async def handle(ws):
    async for text in ws:
        if "SUBSCRIBE" in text:
            await ws.send(json.dumps({"result": None, "id": json.loads(text)["id"]}))
            break
    send = ws.send
    try:
        while True:
            for m in MSGS:
                await send(m)
    except Exception:
        pass

async def main():
    async with serve(handle, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        print(list(server.sockets)[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


class BlastServer:
    def __init__(self, script: str = BLAST) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = f"ws://127.0.0.1:{self.proc.stdout.readline().strip()}/ws"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


SUBSCRIBE = b'{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@trade"],"id":1}'


async def bare_websockets(url: str) -> float:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=1 << 20, compression=None, ping_interval=None) as ws:
        await ws.send(SUBSCRIBE.decode())
        await ws.recv()  # the ack
        n = 0
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            await ws.recv()
        t0 = time.perf_counter()
        while (dt := time.perf_counter() - t0) < SECONDS:
            await ws.recv()
            n += 1
    return n / dt


async def bare_picows(url: str) -> float:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    class Counter(WSListener):  # type: ignore[misc]
        n = 0

        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send(WSMsgType.TEXT, SUBSCRIBE)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            self.n += 1

    transport, listener = await ws_connect(Counter, url)
    await asyncio.sleep(0.5)
    start, t0 = listener.n, time.perf_counter()
    await asyncio.sleep(SECONDS)
    rate = (listener.n - start) / (time.perf_counter() - t0)
    transport.disconnect()
    return float(rate)


async def through_hub(url: str, transport: str) -> float:
    import hub_plugin_websocket

    reg = ExchangeRegistry()
    reg.register(hub_plugin_websocket, name="websocket")
    bus = TypedEventBus()
    count = [0]

    def on_trade(tick: object) -> None:
        count[0] += 1

    bus.subscribe(Trade, on_trade)
    cfg = ExchangeConfig.websocket(
        "binance",
        url,
        symbols=["BTCUSDT", "ETHUSDT"],
        options={"dialect": "binance", "channels": ["trade"], "transport": transport},
    )
    async with ExchangeHub(bus, registry=reg) as hub:
        await hub.connect_exchange("binance", cfg)
        await anyio.sleep(0.5)
        start, t0 = count[0], time.perf_counter()
        await anyio.sleep(SECONDS)
        n, dt = count[0] - start, time.perf_counter() - t0
    return n / dt


def bench_ws_e2e(report: Callable[[Any], None], Result: Any, median_time: Any) -> None:
    for source, script in (("venue", VENUE), ("blast", BLAST)):
        server = BlastServer(script)
        try:
            url = server.url
            runs: dict[str, list[float]] = {"bws": [], "hws": [], "bpw": [], "hpw": []}
            # interleaved rounds, medians: the source shares the machine with the client,
            # and a slow moment should not land on one side only
            for _ in range(ROUNDS):
                runs["bws"].append(asyncio.run(bare_websockets(url)))
                runs["hws"].append(anyio.run(through_hub, url, "websockets"))
                runs["bpw"].append(asyncio.run(bare_picows(url)))
                runs["hpw"].append(anyio.run(through_hub, url, "picows"))
        finally:
            server.close()
        bare_ws, hub_ws, bare_pw, hub_pw = (
            statistics.median(runs[k]) for k in ("bws", "hws", "bpw", "hpw")
        )
        report(
            Result(
                f"ws e2e ({source}): hub (websockets) -> Trade subscriber",
                hub_ws / 1e3,
                "k msgs/s",
                "bare websockets recv()",
                bare_ws / 1e3,
                hub_ws / bare_ws,
                ">= 0.85 of bare",
            )
        )
        report(
            Result(
                f"ws e2e ({source}): hub (picows) -> Trade subscriber",
                hub_pw / 1e3,
                "k msgs/s",
                "bare picows frames",
                bare_pw / 1e3,
                hub_pw / bare_pw,
                ">= 0.75 of bare",
            )
        )


if __name__ == "__main__":
    from compare import Result, median_time, report

    bench_ws_e2e(report, Result, median_time)
