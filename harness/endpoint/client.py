"""Is the load generator keeping up? A ticker on each caller loop, and the rule that reads it.

Every caller of a process shares one asyncio loop, and the Opus encoding and decoding of all of them runs on it. A
saturated loop sends frames late and reads packets late: gaps and underruns the server did not cause. Two
measurements say so, per run:
- loop lag: a ticker due every `TICK_S` records how late it woke (a loop that keeps up wakes within a millisecond
  or two; one that is busy with other callers' work, later);
- send stalls: how much later each frame left than the one before it allowed (harness.endpoint.caller never sends
  two frames closer than 80 ms, so a caller's lateness only grows; its growth per frame is the stall that frame
  suffered, and the last frame's lateness is the caller's total).
The client fell behind when the p99 of either exceeds `BEHIND_MS` (half a frame: a frame sent that late arrives
at the server as a gap of its own). A run that failed the SLO then is limited by the load generator, not a server
failure; more callers are spread over several processes (`callers_per_process`).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Optional, Sequence

from harness.records.endpoint import ClientHealth

TICK_S = 0.010
BEHIND_MS = 40.0
# Callers one load generator process keeps up with here (its loop lag p99 under BEHIND_MS against the echo server
# fixture, each caller encoding and decoding Opus at 12.5 frames/s): measured on the 2-core development machine,
# loaded by other processes (docs/endpoint.md, "How many callers one process sustains"). `auto` spreads more.
CALLERS_PER_PROCESS = 16


class Ticker:
    """Run `tick()` as a task beside the callers; `lags_ms` are how late each tick woke."""

    def __init__(self, interval_s: float = TICK_S) -> None:
        self.interval_s = interval_s
        self.lags_ms: list[float] = []

    async def tick(self) -> None:
        due = time.perf_counter() + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now = time.perf_counter()
            self.lags_ms.append(max(0.0, (now - due) * 1000.0))
            due = max(due + self.interval_s, now)  # after a stall, tick on from now: one long lag, not a burst


def processes_for(callers: int, asked: int = 0) -> int:
    """Load generator processes for `callers`: `asked` when given; else enough that none runs more than
    CALLERS_PER_PROCESS, at most one per CPU."""
    if asked > 0:
        return max(1, min(asked, callers))
    wanted = math.ceil(callers / CALLERS_PER_PROCESS) if callers else 1
    return max(1, min(wanted, os.cpu_count() or 1, callers or 1))


def _p99(values: Sequence[float]) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def send_stalls_ms(lateness_ms: Sequence[float]) -> list[float]:
    """Per frame of one caller, how much its lateness grew: the stall that frame suffered."""
    previous, out = 0.0, []
    for late in lateness_ms:
        out.append(max(0.0, late - previous))
        previous = max(previous, late)
    return out


def client_health(lags_by_process: Sequence[Sequence[float]], lateness_by_caller: Sequence[Sequence[float]],
                  callers_per_process: int) -> ClientHealth:
    """The run's client health: the worst process's loop lag, every frame's send stall, and the verdict."""
    p99s = [p for p in (_p99(lags) for lags in lags_by_process) if p is not None]
    maxima = [max(lags) for lags in lags_by_process if lags]
    stalls = [ms for late in lateness_by_caller for ms in send_stalls_ms(late)]
    totals = [late[-1] for late in lateness_by_caller if late]
    health = ClientHealth(processes=max(1, len(lags_by_process)), callers_per_process=callers_per_process,
                          tick_ms=TICK_S * 1000.0, loop_lag_p99_ms=max(p99s) if p99s else None,
                          loop_lag_max_ms=max(maxima) if maxima else None, send_stall_p99_ms=_p99(stalls),
                          send_late_total_max_ms=max(totals) if totals else None)
    behind = [f"{name} p99 {value:.0f} ms" for name, value in (("event-loop lag", health.loop_lag_p99_ms),
                                                                ("send stall", health.send_stall_p99_ms))
              if value is not None and value > BEHIND_MS]
    if behind:
        health.fell_behind = True
        health.note = (f"the load generator fell behind ({', '.join(behind)} > {BEHIND_MS:g} ms, "
                       f"{callers_per_process} caller(s) per process over {health.processes} process(es))")
    return health
