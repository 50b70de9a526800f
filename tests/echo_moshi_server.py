"""A test fixture, NOT a model: a WebSocket server that speaks moshi's protocol and answers every 80 ms frame of
Opus audio with one frame of its own, serving any number of calls at once (as a batching server would) unless
--one-call-at-a-time. It lets the load generator's mechanics (open loop, K server processes, cleanup) be tested in
seconds; the real servers are tested in test_endpoint.py.

    python tests/echo_moshi_server.py --port P [--one-call-at-a-time] [--prefill-s S]

--prefill-s waits S seconds before each call's handshake, as PersonaPlex's persona prefill does.
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
import sphn
from aiohttp import WSMsgType, web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--one-call-at-a-time", action="store_true")
    parser.add_argument("--prefill-s", type=float, default=0.0, help="wait before each call's handshake")
    parser.add_argument("--tag", default="", help="ignored: lets a test find the servers it started")
    args = parser.parse_args()
    lock = asyncio.Lock()

    async def chat(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def serve() -> None:
            reader, writer = sphn.OpusStreamReader(24000), sphn.OpusStreamWriter(24000)
            pending = 0
            await asyncio.sleep(args.prefill_s)
            await ws.send_bytes(b"\x00")
            async for message in ws:
                if message.type != WSMsgType.BINARY or not message.data or message.data[0] != 1:
                    continue
                pending += reader.append_bytes(message.data[1:]).shape[-1]
                while pending >= 1920:
                    pending -= 1920
                    page = writer.append_pcm(np.zeros(1920, dtype=np.float32))
                    if len(page):
                        await ws.send_bytes(b"\x01" + bytes(page))
                    await ws.send_bytes(b"\x02 hi")

        if args.one_call_at_a_time:
            async with lock:
                await serve()
        else:
            await serve()
        return ws

    app = web.Application()
    app.router.add_get("/api/chat", chat)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
