"""Load shapes: closed loop (N callers from a shared start) and open loop (Poisson arrivals of finite calls).

The callers run on asyncio loops, several processes of them when one loop cannot keep up
(harness.endpoint.client: `CallSettings.client_processes`, auto by default). Processes are started (spawn) and
ready before the shared start is fixed, so that their start-up is not in any caller's figures; they share the
system's monotonic clock. Each loop carries a ticker that measures how late it runs: the run records whether the
load generator kept up.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import aiohttp

from harness.endpoint.assess import load_run
from harness.endpoint.caller import CallOutcome, CallPlan, Clock, call
from harness.endpoint.client import Ticker, processes_for
from harness.records.endpoint import LoadRun, Slo
from harness.stats.endpoint import poisson_arrivals

START_LEAD_S = 0.2  # the shared start lies this far ahead, so that every caller is ready to dial at it
READY_TIMEOUT_S = 120.0  # a load generator process imports aiohttp and sphn before it is ready


@dataclass
class CallSettings:
    call_seconds: float = 10.0
    connect_timeout_s: float = 10.0
    handshake_timeout_s: Optional[float] = None  # None: long enough to wait for every call queued ahead
    drain_s: float = 2.0
    insecure: bool = False
    client_processes: int = 0  # load generator processes; 0: as many as the callers need (harness.endpoint.client)

    def handshake_timeout(self, callers: int) -> float:
        if self.handshake_timeout_s is not None:
            return self.handshake_timeout_s
        # a queued caller waits for every call ahead of it as the server processes it (a slow server's call lasts
        # longer than its audio), so the default is generous; --handshake-timeout sets it
        return 600.0 + callers * (self.call_seconds + self.drain_s + 60.0)


@dataclass
class Batch:
    """What one load generator process measured: its callers' outcomes and its loop's lag."""

    outcomes: list[CallOutcome] = field(default_factory=list)
    lags_ms: list[float] = field(default_factory=list)
    callers: int = 0


async def _run(plans: Sequence[CallPlan], clock: Clock) -> Batch:
    ticker = Ticker()
    ticking = asyncio.create_task(ticker.tick())
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            outcomes = list(await asyncio.gather(*(call(p, clock, session) for p in plans)))
    finally:
        ticking.cancel()
    return Batch(outcomes=outcomes, lags_ms=ticker.lags_ms, callers=len(plans))


def _process_main(plans: list[CallPlan], index: int, ready: Any, go: Any, done: Any) -> None:
    """One load generator process: ready, wait for the shared start, run its callers, send back what they saw."""
    ready.put(index)
    t0 = go.get()
    try:
        done.put((index, asyncio.run(_run(plans, Clock(t0))), None))
    except BaseException as exc:  # noqa: BLE001 (sent back as the reason, the parent decides)
        done.put((index, None, f"{type(exc).__name__}: {exc}"))


def _gather(children: list[Any], source: Any, count: int, deadline: Optional[float], what: str) -> list[Any]:
    """`count` messages from `source`; a load generator process that died, or the deadline, ends the wait."""
    found: list[Any] = []
    while len(found) < count:
        if deadline is not None and time.monotonic() > deadline:
            raise RuntimeError(f"load generator processes not {what} within {READY_TIMEOUT_S:.0f} s")
        try:
            found.append(source.get(timeout=1.0))
        except queue.Empty:
            dead = [c for c in children if c.exitcode not in (None, 0)]
            if dead and source.empty():
                raise RuntimeError(f"load generator process {dead[0].name} died (exit {dead[0].exitcode}) before "
                                   f"it was {what}") from None
    return found


def run_callers(plans: list[CallPlan], processes: int) -> list[Batch]:
    """Every plan run to its end, over `processes` load generator processes (round-robin); one: in this one."""
    if processes <= 1:
        return [asyncio.run(_run(plans, Clock()))]
    context = multiprocessing.get_context("spawn")
    groups = [plans[p::processes] for p in range(processes)]
    for p, group in enumerate(groups):
        for plan in group:
            plan.process = p
    ready, done = context.Queue(), context.Queue()
    gos = [context.Queue() for _ in groups]
    children = [context.Process(target=_process_main, args=(group, p, ready, gos[p], done), daemon=True,
                                name=f"harness-callers-{p}") for p, group in enumerate(groups)]
    try:
        for child in children:
            child.start()
        _gather(children, ready, processes, time.monotonic() + READY_TIMEOUT_S, "ready")
        t0 = time.perf_counter()
        for go in gos:
            go.put(t0)
        found: dict[int, Batch] = {}
        for index, batch, error in _gather(children, done, processes, None, "done"):
            if error is not None:
                raise RuntimeError(f"load generator process {index} failed: {error}")
            found[index] = batch
        return [found[p] for p in range(processes)]
    finally:
        for child in children:  # an interrupt or a failure: none outlives the measurement
            if child.is_alive():
                child.terminate()
            child.join(timeout=5)


def _plans(urls: Sequence[str], starts: Sequence[float], settings: CallSettings) -> list[CallPlan]:
    timeout = settings.handshake_timeout(len(starts))
    return [CallPlan(index=i, url=urls[i % len(urls)], start_s=START_LEAD_S + s, call_seconds=settings.call_seconds,
                     connect_timeout_s=settings.connect_timeout_s, handshake_timeout_s=timeout,
                     drain_s=settings.drain_s, insecure=settings.insecure, server=i % len(urls))
            for i, s in enumerate(starts)]


def _measured(plans: list[CallPlan], settings: CallSettings) -> tuple[list[CallOutcome], list[Batch]]:
    batches = run_callers(plans, processes_for(len(plans), settings.client_processes))
    outcomes: list[Optional[CallOutcome]] = [None] * len(plans)
    for p, batch in enumerate(batches):
        group = [plan for plan in plans if plan.process == p] if len(batches) > 1 else plans
        for plan, outcome in zip(group, batch.outcomes):
            outcomes[plan.index] = outcome
    return [o for o in outcomes if o is not None], batches


def closed_loop(urls: Sequence[str], sessions: int, settings: CallSettings, slo: Slo) -> LoadRun:
    """`sessions` callers dialling at one shared start (spread round-robin over `urls`: one per server process)."""
    outcomes, batches = _measured(_plans(urls, [0.0] * sessions, settings), settings)
    return load_run("closed", outcomes, slo, settings.call_seconds, servers=len(urls),
                    lags_by_process=[b.lags_ms for b in batches], callers_per_process=max(b.callers for b in batches))


def open_loop(urls: Sequence[str], rate_per_s: float, calls: int, settings: CallSettings, slo: Slo,
              seed: int = 0) -> LoadRun:
    """`calls` finite calls arriving as a Poisson process of `rate_per_s`, each streaming `call_seconds`."""
    starts = poisson_arrivals(rate_per_s, calls, seed)
    outcomes, batches = _measured(_plans(urls, starts, settings), settings)
    return load_run("open", outcomes, slo, settings.call_seconds, arrival_rate=rate_per_s, servers=len(urls),
                    lags_by_process=[b.lags_ms for b in batches], callers_per_process=max(b.callers for b in batches))
