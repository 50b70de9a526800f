"""Stage timers for one frame: wall clock always, CUDA events as well on a GPU.

On a GPU the device is synchronised at every stage boundary so that wall-clock stage times are
the time the stage really took (DESIGN.md: one frame = one step, synchronised at boundaries).
"""

from __future__ import annotations

import time

import torch


class StageClock:
    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._marks: list[tuple[str, int]] = []
        self._events: list[tuple[str, torch.cuda.Event]] = []

    def start(self) -> None:
        self._marks = [("start", self._now())]
        if self._cuda:
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            self._events = [("start", start)]

    def mark(self, stage: str) -> None:
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._events.append((stage, event))
        self._marks.append((stage, self._now()))

    def _now(self) -> int:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter_ns()

    def wall_ms(self) -> dict[str, float]:
        """Per-stage wall milliseconds, plus 'total' from start to the last mark."""
        out = {stage: (t - self._marks[i][1]) / 1e6 for i, (stage, t) in enumerate(self._marks[1:])}
        out["total"] = (self._marks[-1][1] - self._marks[0][1]) / 1e6
        return out

    def event_ms(self) -> dict[str, float]:
        if not self._cuda:
            return {}
        return {stage: self._events[i][1].elapsed_time(event) for i, (stage, event) in enumerate(self._events[1:])}
