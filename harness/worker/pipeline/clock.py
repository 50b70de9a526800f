"""Stage timers for one frame.

Beside each wall-clock mark, the calling thread's CPU time (`time.thread_time_ns`): on a CPU run the time the
main thread computed (or spun) in each stage, on CUDA the host's launch work; a stage whose wall time is far
above its CPU time waited (for a CPU, a page, a lock or the GPU).

CPU: `time.perf_counter_ns` at each stage boundary. CUDA: the frame is synchronised once, at its end, as
a server is when it copies the PCM to the host (`pcm.cpu()`); stage boundaries are CUDA events recorded on
the stream and read after that one synchronisation, so timing does not add syncs a server would not pay.
"""

from __future__ import annotations

import time

import torch


class StageClock:
    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._marks: list[tuple[str, int]] = []
        self._events: list[tuple[str, "torch.cuda.Event"]] = []
        self._cpu: list[tuple[str, int]] = []

    def start(self) -> None:
        self._cpu = [("start", time.thread_time_ns())]
        self._marks = [("start", time.perf_counter_ns())]
        if self._cuda:
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            self._events = [("start", start)]

    def mark(self, stage: str) -> None:
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._events.append((stage, event))
        else:
            self._marks.append((stage, time.perf_counter_ns()))
        self._cpu.append((stage, time.thread_time_ns()))

    def finish(self) -> None:
        """End of the frame: the one synchronisation on CUDA, then the wall clock."""
        if self._cuda:  # on a CPU the last stage's mark already ends the frame: its stages add up to the total
            torch.cuda.synchronize()
            self._marks.append(("end", time.perf_counter_ns()))
            self._cpu.append(("end", time.thread_time_ns()))

    def wall_ms(self) -> dict[str, float]:
        """'total' wall milliseconds; on a CPU also each stage (on CUDA stages come from `event_ms`)."""
        out: dict[str, float] = {}
        if not self._cuda:
            out = {stage: (t - self._marks[i][1]) / 1e6 for i, (stage, t) in enumerate(self._marks[1:])}
        out["total"] = (self._marks[-1][1] - self._marks[0][1]) / 1e6
        return out

    def cpu_ms(self) -> dict[str, float]:
        """The main thread's CPU milliseconds per stage (on CUDA the last, 'end', holds the synchronisation) and
        'total', which spans the same interval as the wall-clock total."""
        out = {stage: (t - self._cpu[i][1]) / 1e6 for i, (stage, t) in enumerate(self._cpu[1:])}
        out["total"] = (self._cpu[-1][1] - self._cpu[0][1]) / 1e6
        return out

    def event_ms(self) -> dict[str, float]:
        """Per-stage GPU milliseconds between recorded events; valid after `finish`."""
        if not self._cuda:
            return {}
        return {stage: self._events[i][1].elapsed_time(event) for i, (stage, event) in enumerate(self._events[1:])}
