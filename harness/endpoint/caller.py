"""One caller: connect, wait for the handshake, stream 80 ms frames on a fixed schedule, hear what comes back.

Everything is timed on the caller's clock (`Clock`: the load generator's monotonic clock, zero at the shared start).
The caller starts streaming when the handshake arrives, as moshi's web client does (NVIDIA's server discards what
it receives during the persona prefill anyway). Frame i is due at stream start + i x 80 ms; a sender that stalled
sends late but never two frames closer than 80 ms (no catch-up burst), and each frame's lateness is recorded so
that a slow client is not blamed on the server. Any failure becomes the caller's reason, in one line.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Optional

import aiohttp

from harness.endpoint.audio import Microphone, Speaker
from harness.endpoint.protocol import FRAME_SAMPLES, Kind, kind_name, split_message
from harness.records.endpoint import CallerRaw

FRAME_S = 0.080
CAUGHT_UP_FRAMES = 2  # a server has caught up when it owes no more than moshi's delay


class Clock:
    """Seconds from the shared start. perf_counter is the system's monotonic clock on Linux, so processes of the
    load generator given the same `t0` share one clock."""

    def __init__(self, t0: Optional[float] = None) -> None:
        self.t0 = time.perf_counter() if t0 is None else t0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    async def sleep_until(self, at_s: float) -> None:
        delay = at_s - self.now()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class CallPlan:
    index: int
    url: str
    start_s: float  # when this caller dials, on the shared clock
    call_seconds: float
    connect_timeout_s: float = 10.0
    handshake_timeout_s: float = 60.0
    drain_s: float = 2.0  # after the last frame, at most this long listening for what the server still owes
    insecure: bool = False  # wss:// without certificate checks
    server: int = 0  # which server process `url` is (index among the run's URLs)
    process: int = 0  # which load generator process runs it


@dataclass
class CallOutcome:
    raw: CallerRaw
    failure: Optional[str] = None
    close_reason: str = ""
    text: list[str] = field(default_factory=list)


def _tls(plan: CallPlan) -> ssl.SSLContext | bool:
    if plan.insecure:
        return False
    return ssl.create_default_context()


def _connect_error(exc: BaseException, url: str) -> str:
    return " ".join(_connect_reason(exc, url).split())  # one line, whatever the library put in its message


def _connect_reason(exc: BaseException, url: str) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS failure: certificate not accepted ({exc.certificate_error})"
    if isinstance(exc, (aiohttp.ClientConnectorSSLError, ssl.SSLError)):
        cause = getattr(exc, "os_error", exc)
        return f"TLS failure: {getattr(cause, 'reason', None) or cause} (is it a wss:// server?)"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return (f"not a moshi server: HTTP {exc.status} to the WebSocket upgrade on {url.split('?')[0]} "
                f"({exc.message or 'no upgrade'})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}" if exc.os_error else f"cannot connect: {exc}"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return "not a moshi server: it closed the connection during the HTTP upgrade"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"not a moshi server: its reply is not HTTP ({str(exc.message or exc).splitlines()[0][:120]})"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection failed: {exc.strerror or exc}"
    if isinstance(exc, asyncio.TimeoutError):
        return "connect timed out"
    return f"connection failed: {type(exc).__name__}: {exc}"


async def call(plan: CallPlan, clock: Clock, session: aiohttp.ClientSession) -> CallOutcome:
    raw = CallerRaw(scheduled_start_s=plan.start_s, server=plan.server, process=plan.process)
    outcome = CallOutcome(raw=raw)
    await clock.sleep_until(plan.start_s)
    raw.connect_start_s = clock.now()
    try:
        ws = await asyncio.wait_for(session.ws_connect(plan.url, ssl=_tls(plan), autoping=True, max_msg_size=0),
                                    timeout=plan.connect_timeout_s)
    except (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError, OSError, ValueError) as exc:
        outcome.failure = _connect_error(exc, plan.url)
        outcome.close_reason = "never connected"
        raw.end_s = clock.now()
        return outcome
    raw.upgraded_s = clock.now()
    try:
        await _converse(plan, clock, ws, outcome)
    finally:
        if not ws.closed:
            await ws.close()
        raw.end_s = clock.now()
    return outcome


async def _first_message(ws: aiohttp.ClientWebSocketResponse, outcome: CallOutcome, timeout_s: float,
                         clock: Clock) -> bool:
    """Wait for kind 0; True once it came. Anything else before it is counted or is the failure."""
    deadline = clock.now() + timeout_s
    while True:
        remaining = deadline - clock.now()
        if remaining <= 0:
            outcome.failure = f"no handshake within {timeout_s:.0f} s of the upgrade"
            outcome.close_reason = "caller gave up waiting for the handshake"
            return False
        try:
            message = await ws.receive(timeout=remaining)
        except asyncio.TimeoutError:
            continue
        if message.type == aiohttp.WSMsgType.BINARY:
            kind, payload = split_message(message.data)
            if kind == Kind.HANDSHAKE:
                outcome.raw.handshake_s = clock.now()
                return True
            if kind == Kind.ERROR:
                outcome.failure = f"server error before the handshake: {payload.decode('utf-8', 'replace')[:200]}"
                outcome.close_reason = "server error"
                return False
            _count(outcome, kind)
            continue
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            outcome.failure = f"server closed the socket before the handshake (code {ws.close_code})"
            outcome.close_reason = "server closed before the handshake"
            return False
        if message.type == aiohttp.WSMsgType.ERROR:
            outcome.failure = f"socket error before the handshake: {ws.exception()}"
            outcome.close_reason = "socket error"
            return False
        outcome.failure = f"not a moshi server: its first message was {message.type.name}, not a binary handshake"
        outcome.close_reason = "protocol error"
        return False


def _count(outcome: CallOutcome, kind: int) -> None:
    name = kind_name(kind)
    outcome.raw.other_kinds[name] = outcome.raw.other_kinds.get(name, 0) + 1


async def _converse(plan: CallPlan, clock: Clock, ws: aiohttp.ClientWebSocketResponse, outcome: CallOutcome) -> None:
    if not await _first_message(ws, outcome, plan.handshake_timeout_s, clock):
        return
    frames = max(1, round(plan.call_seconds / FRAME_S))
    stream_start = outcome.raw.handshake_s or clock.now()
    sender = asyncio.create_task(_send(plan, clock, ws, outcome, stream_start, frames))
    receiver = asyncio.create_task(_receive(ws, outcome, clock))
    done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    if sender in done and sender.exception() is None and not receiver.done():
        # The stream is over: listen until the server has answered every frame (less moshi's delay) or the drain
        # time passes, then hang up. Figures at the stream's end (deficit) do not depend on this.
        deadline = clock.now() + plan.drain_s
        owed = (len(outcome.raw.send_s) - CAUGHT_UP_FRAMES) * FRAME_SAMPLES
        while not receiver.done() and clock.now() < deadline and sum(outcome.raw.audio_samples) < owed:
            await asyncio.wait({receiver}, timeout=min(0.05, max(0.0, deadline - clock.now())))
        if not receiver.done():
            outcome.close_reason = outcome.close_reason or "caller hung up after its stream"
            await ws.close()
    for task in (sender, receiver):
        if not task.done():
            task.cancel()
        try:
            await task
        except (asyncio.CancelledError, aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            if not isinstance(exc, asyncio.CancelledError) and outcome.failure is None:
                outcome.failure = f"sending failed mid-call: {exc}"
    sent_all = len(outcome.raw.send_s) >= frames
    if outcome.failure is None and not sent_all:
        outcome.failure = f"call ended after {len(outcome.raw.send_s)} of {frames} frames: {outcome.close_reason}"
    if outcome.failure is None and not any(outcome.raw.audio_samples):
        outcome.failure = "no audio received during the call"


async def _send(plan: CallPlan, clock: Clock, ws: aiohttp.ClientWebSocketResponse, outcome: CallOutcome,
                stream_start: float, frames: int) -> None:
    microphone = Microphone(plan.index)
    last = -1.0
    for i in range(frames):
        due = stream_start + i * FRAME_S
        await clock.sleep_until(max(due, last + FRAME_S))
        if ws.closed:
            return
        page = microphone.frame(i)
        if page:
            await ws.send_bytes(bytes([Kind.AUDIO]) + page)
        last = clock.now()
        outcome.raw.send_scheduled_s.append(due)
        outcome.raw.send_s.append(last)


async def _receive(ws: aiohttp.ClientWebSocketResponse, outcome: CallOutcome, clock: Clock) -> None:
    speaker = Speaker()
    async for message in ws:
        now = clock.now()
        if message.type == aiohttp.WSMsgType.BINARY:
            kind, payload = split_message(message.data)
            if kind == Kind.AUDIO:
                try:
                    samples = speaker.samples(payload)
                except Exception as exc:  # sphn raises plain exceptions on a corrupt Ogg stream
                    outcome.failure = f"undecodable audio from the server: {exc}"
                    outcome.close_reason = "caller hung up: corrupt audio"
                    return
                if samples:
                    outcome.raw.audio_s.append(now)
                    outcome.raw.audio_samples.append(samples)
            elif kind == Kind.TEXT:
                outcome.raw.text_s.append(now)
                outcome.text.append(payload.decode("utf-8", "replace"))
            elif kind == Kind.ERROR:
                outcome.failure = f"server error mid-call: {payload.decode('utf-8', 'replace')[:200]}"
                _count(outcome, kind)
            else:
                _count(outcome, kind)
        elif message.type == aiohttp.WSMsgType.ERROR:
            outcome.close_reason = f"socket error: {ws.exception()}"
            return
    if not outcome.close_reason:
        outcome.close_reason = f"server closed the socket (code {ws.close_code})"
