"""The ``websockets`` transport through an HTTP proxy from the environment.

Direct connections drive websockets' sans-I/O protocol; a connection that the
environment routes through a proxy uses the library's asyncio client, which
speaks HTTP CONNECT. Tested against a real CONNECT proxy on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hub_plugin_websocket.simulator import BinanceSimulator
from hub_plugin_websocket.transports import TransportClosed, TransportSettings
from hub_plugin_websocket.transports.websockets_transport import WebsocketsTransport

pytestmark = pytest.mark.anyio


class ConnectProxy:
    """A minimal HTTP CONNECT proxy (loopback targets only) that counts its tunnels."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class _Capacity:
    backpressured = False

    def add_capacity_waiter(self, wake: object) -> None:
        raise AssertionError("never backpressured here")


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ConnectProxy]:
    async with ConnectProxy() as p:
        for name in ("ws_proxy", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{p.port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        yield p


async def _trades_through(transport: WebsocketsTransport, endpoint: str, proxied: bool) -> int:
    settings = TransportSettings(
        url=endpoint, ssl=None, max_size=1 << 20, open_timeout=5, use_proxy=proxied
    )
    await transport.connect(settings)
    await transport.send(b'{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')
    frames: list[bytes] = []

    def on_frame(data: bytes, ts: int) -> None:
        frames.append(data)
        if sum(b'"e":"trade"' in f for f in frames) >= 5:
            asyncio.get_running_loop().create_task(transport.close())

    await asyncio.wait_for(transport.run(on_frame, _Capacity()), 10)
    assert frames[0] == b'{"result": null, "id": 1}'
    return sum(b'"e":"trade"' in f for f in frames)


async def test_an_environment_proxy_carries_the_connection(proxy: ConnectProxy) -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=200, seed=2) as sim:
        assert await _trades_through(WebsocketsTransport(), sim.endpoint, proxied=True) >= 5
        assert proxy.tunnels == [sim.host_port]


async def test_loopback_does_not_use_the_proxy(proxy: ConnectProxy) -> None:
    """``use_proxy`` is False for loopback endpoints (the connection decides): direct."""
    async with BinanceSimulator(["BTCUSDT"], rate=200, seed=2) as sim:
        assert await _trades_through(WebsocketsTransport(), sim.endpoint, proxied=False) >= 5
        assert proxy.tunnels == []


async def test_send_after_the_venue_closed_is_transport_closed() -> None:
    async with BinanceSimulator(["BTCUSDT"], rate=0, seed=2) as sim:
        transport = WebsocketsTransport()
        settings = TransportSettings(
            url=sim.endpoint, ssl=None, max_size=1 << 20, open_timeout=5, use_proxy=False
        )
        await transport.connect(settings)
        await sim.drop_connections()
        with pytest.raises(TransportClosed) as info:
            await asyncio.wait_for(transport.run(lambda d, t: None, _Capacity()), 5)
        assert info.value.code == 1006
        with pytest.raises(TransportClosed):
            await transport.send(b"{}")
        await transport.close()
