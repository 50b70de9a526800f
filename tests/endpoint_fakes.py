"""Servers that are NOT moshi, on 127.0.0.1, for the endpoint's bad-input tests: each runs in a thread and stops."""

from __future__ import annotations

import asyncio
import socket
import threading
from contextlib import contextmanager
from typing import Awaitable, Callable, Iterator

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _loop_thread(start: Callable[[asyncio.AbstractEventLoop], Awaitable[Callable[[], Awaitable[None]]]]) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["stop"] = loop.run_until_complete(start(loop))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(holder["stop"]())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextmanager
def aiohttp_server(routes: dict[str, Handler]) -> Iterator[int]:
    port = _free_port()

    async def start(_: asyncio.AbstractEventLoop):  # noqa: ANN202
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner.cleanup

    with _loop_thread(start):
        yield port


@contextmanager
def garbage_server() -> Iterator[int]:
    """Answers any connection with bytes that are not HTTP, then closes."""
    port = _free_port()

    async def start(_: asyncio.AbstractEventLoop):  # noqa: ANN202
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"\x00\xff\x13garbage that is not HTTP\r\n\r\n" * 4)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port)

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        return stop

    with _loop_thread(start):
        yield port


async def not_found(_: web.Request) -> web.StreamResponse:
    return web.Response(status=404, text="not here")


async def plain_page(_: web.Request) -> web.StreamResponse:
    return web.Response(text="<html>a web page</html>", content_type="text/html")


async def silent_websocket(request: web.Request) -> web.StreamResponse:
    """Upgrades, then never sends the handshake."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws


async def hangs_up_mid_call(request: web.Request) -> web.StreamResponse:
    """Handshake, a little audio-free talk, then closes while the caller still streams."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_bytes(b"\x00")
    await asyncio.sleep(0.3)
    await ws.close()
    return ws
