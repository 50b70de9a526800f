"""Was the process kept from running? Per-frame stolen time from the worker's own CPU evidence (pure functions).

A frame's wall time is its code's time plus the time the process could not run. Two measurements of the latter,
both per frame (harness.worker.pipeline.cpu_clock):
- run-queue wait of the threads that carry the frame (the main thread; on a CPU run also torch's intra-op pool;
  never the harness's telemetry sampler). A run whose threads outnumber its cores waits in every frame by its own
  doing: then only the wait beyond the run's usual (its median, `own_wait_ms`) can be anyone else's;
- off-CPU time of the main thread beyond its usual (CPU runs only): wall minus CPU time, less the run's median of
  that gap. On a CPU run the main thread computes or spins for the whole frame, so a frame whose gap jumps
  was blocked (paging, reclaim, I/O) or preempted. On a GPU the main thread legitimately waits for the device, so
  the gap says nothing there and is not used.
Stolen time is the larger of the two, never more than the frame. A frame is a candidate when at least
`DISTURBED_SHARE` of it, and at least `DISTURBED_MIN_MS`, was stolen; it counts as disturbed only when something
outside the configuration used the CPU meanwhile in a comparable amount (`corroborated`: other processes' CPU,
hypervisor steal included, at least `CORROBORATION` of the stolen time). A wait nothing else explains is the
process's own (its threads, its page faults, its I/O) and stays in the figures; in most frames it is the
configuration's steady state (`STEADY_SHARE`). Collections of the process's own garbage are its own cost (a server
pays them too): they are on-CPU time and never count as stolen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

DISTURBED_SHARE = 0.25
DISTURBED_MIN_MS = 2.0
# Other processes' CPU during a frame must reach this share of its stolen time to blame them. /proc/stat counts
# 10 ms ticks, so a short wait may find no tick: the error falls on the side of judging the figures as measured.
CORROBORATION = 0.5
# Candidates in at least this share of the frames are the configuration's steady state, not a disturbance.
STEADY_SHARE = 0.5


def stolen_ms(wall_ms: Sequence[float], cpu_ms: Sequence[float] = (), run_wait_ms: Sequence[float] = (),
              cpu_bound: bool = True, own_wait_ms: float = 0.0) -> list[float]:
    """Per frame, milliseconds the process could not run (zeros where there is no evidence); `own_wait_ms` of each
    frame's wait is the configuration's own (an oversubscribed pool) and not counted."""
    wall = np.asarray(wall_ms, dtype=float)
    stolen = np.zeros_like(wall)
    if len(run_wait_ms) == wall.size:
        stolen = np.maximum(stolen, np.asarray(run_wait_ms, dtype=float) - own_wait_ms)
    if cpu_bound and len(cpu_ms) == wall.size and wall.size:
        gap = wall - np.asarray(cpu_ms, dtype=float)
        stolen = np.maximum(stolen, gap - float(np.median(gap)))
    return np.clip(stolen, 0.0, wall).tolist()


def disturbed_frames(wall_ms: Sequence[float], stolen: Sequence[float], share: float = DISTURBED_SHARE,
                     min_ms: float = DISTURBED_MIN_MS) -> list[int]:
    """Indices of the frames that lost at least `share` of their wall time, and `min_ms`, to not running."""
    return [i for i, (w, s) in enumerate(zip(wall_ms, stolen)) if s >= min_ms and s >= share * w]


def corroborated(frames: Sequence[int], stolen: Sequence[float], others_cpu_ms: Sequence[float],
                 share: float = CORROBORATION) -> list[int]:
    """The frames among `frames` during which other processes used at least `share` of their stolen time in CPU;
    none without that evidence (nothing outside is blamed on no evidence)."""
    if len(others_cpu_ms) != len(stolen):
        return []
    return [i for i in frames if others_cpu_ms[i] >= share * stolen[i]]


def undisturbed(wall_ms: Sequence[float], stolen: Sequence[float], frames: Sequence[int]) -> list[float]:
    """The series with the stolen time taken out of the disturbed frames: what the code took there."""
    out = list(wall_ms)
    for i in frames:
        out[i] = max(0.0, out[i] - stolen[i])
    return out


def spans(frames: Sequence[int]) -> str:
    """'16-33, 40' for frames [16..33, 40]."""
    ordered, parts, i = sorted(frames), [], 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


@dataclass(frozen=True)
class Interference:
    """How much measured interference inflates a statistic: statistic(wall) / statistic(wall less stolen) - 1."""

    inflation: float
    disturbed: int
    stolen_share: float  # stolen time over wall time, all frames


def interference(wall_ms: Sequence[float], stolen: Sequence[float], q: Optional[float]) -> Interference:
    """For the q-th percentile (the mean if None) of the series: what the stolen time adds to it."""
    wall = np.asarray(wall_ms, dtype=float)
    if wall.size == 0:
        return Interference(0.0, 0, 0.0)
    frames = disturbed_frames(wall_ms, stolen)
    clean = np.asarray(undisturbed(wall_ms, stolen, frames), dtype=float)
    stat = (lambda a: float(np.mean(a))) if q is None else (lambda a: float(np.percentile(a, q)))
    base = stat(clean)
    total = float(wall.sum())
    return Interference(inflation=stat(wall) / base - 1.0 if base > 0 else 0.0, disturbed=len(frames),
                        stolen_share=float(np.sum(stolen)) / total if total > 0 else 0.0)
