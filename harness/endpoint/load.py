"""Load shapes: closed loop (N callers from a shared start) and open loop (Poisson arrivals of finite calls)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Optional, Sequence

import aiohttp

from harness.endpoint.assess import load_run
from harness.endpoint.caller import CallOutcome, CallPlan, Clock, call
from harness.records.endpoint import LoadRun, Slo
from harness.stats.endpoint import poisson_arrivals

START_LEAD_S = 0.2  # the shared start lies this far ahead, so that every caller is ready to dial at it


@dataclass
class CallSettings:
    call_seconds: float = 10.0
    connect_timeout_s: float = 10.0
    handshake_timeout_s: Optional[float] = None  # None: long enough to wait for every call queued ahead
    drain_s: float = 2.0
    insecure: bool = False

    def handshake_timeout(self, callers: int) -> float:
        if self.handshake_timeout_s is not None:
            return self.handshake_timeout_s
        # a queued caller waits for every call ahead of it as the server processes it (a slow server's call lasts
        # longer than its audio), so the default is generous; --handshake-timeout sets it
        return 600.0 + callers * (self.call_seconds + self.drain_s + 60.0)


async def _run(plans: Sequence[CallPlan]) -> list[CallOutcome]:
    clock = Clock()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        return list(await asyncio.gather(*(call(p, clock, session) for p in plans)))


def _plans(urls: Sequence[str], starts: Sequence[float], settings: CallSettings) -> list[CallPlan]:
    timeout = settings.handshake_timeout(len(starts))
    return [CallPlan(index=i, url=urls[i % len(urls)], start_s=START_LEAD_S + s, call_seconds=settings.call_seconds,
                     connect_timeout_s=settings.connect_timeout_s, handshake_timeout_s=timeout,
                     drain_s=settings.drain_s, insecure=settings.insecure) for i, s in enumerate(starts)]


def closed_loop(urls: Sequence[str], sessions: int, settings: CallSettings, slo: Slo) -> LoadRun:
    """`sessions` callers dialling at one shared start (spread round-robin over `urls`: one per server process)."""
    outcomes = asyncio.run(_run(_plans(urls, [0.0] * sessions, settings)))
    return load_run("closed", outcomes, slo, settings.call_seconds, servers=len(urls))


def open_loop(urls: Sequence[str], rate_per_s: float, calls: int, settings: CallSettings, slo: Slo,
              seed: int = 0) -> LoadRun:
    """`calls` finite calls arriving as a Poisson process of `rate_per_s`, each streaming `call_seconds`."""
    starts = poisson_arrivals(rate_per_s, calls, seed)
    outcomes = asyncio.run(_run(_plans(urls, starts, settings)))
    return load_run("open", outcomes, slo, settings.call_seconds, arrival_rate=rate_per_s, servers=len(urls))
