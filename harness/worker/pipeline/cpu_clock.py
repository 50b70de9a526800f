"""Was this process running during a frame? Its own CPU time and its threads' run-queue wait, read per frame.

A frame that takes 3 s where it takes 140 ms is either slow code or a process that was not running (another
process on its cores, the host swapping, a VM's steal). Wall time alone cannot tell them apart; these can:
- the main thread's CPU time (`time.thread_time_ns`): never more than the wall time;
- the whole process's CPU time (`time.process_time_ns`, every thread: can exceed the wall time);
- run-queue wait (Linux schedstat, `/proc/self/task/<tid>/schedstat`, second field): nanoseconds a thread was
  runnable but not on a CPU. Three readings per frame: the main thread's (it carries every frame), the largest of
  the threads that carry the frame (the main thread and any thread but the harness's own helpers, such as the
  telemetry sampler, which register in `HELPER_THREADS`: on a CPU run that is torch's intra-op pool; a thread
  waiting in a barrier for a starved pool thread stalls too), and the largest of any thread (evidence only: a
  sampler or driver thread that waited did not hold the frame up);
- CPU time used by everything else on the host during the frame (`/proc/stat` busy ticks, steal included,
  less this process's own CPU time; 10 ms ticks, so coarse over a short frame).
Reading all of it costs some tens of microseconds per frame, outside the timed region.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

_TASKS = "/proc/self/task"
_STAT = "/proc/stat"
_TICK_MS = 1000.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
# Native ids of the harness's own threads inside the worker (the telemetry sampler): they do not carry a frame.
HELPER_THREADS: set[int] = set()


def usable_cores() -> int:
    """CPUs this process may run on (its affinity, as a container or taskset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class CpuReading:
    thread_ns: int
    process_ns: int
    wait_ns: dict[int, int] = field(default_factory=dict)  # thread id -> run-queue wait so far
    host_busy_ticks: Optional[int] = None


@dataclass(frozen=True)
class FrameCpu:
    cpu_ms: float
    process_cpu_ms: float
    run_wait_ms: Optional[float]  # any thread
    others_cpu_ms: Optional[float]
    main_wait_ms: Optional[float] = None  # the main thread
    frame_wait_ms: Optional[float] = None  # the threads that carry the frame (main + pool, not the helpers)


class ProcessClock:
    """`read()` before and after a frame; `between(before, after)` is that frame's evidence."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self.main_tid = threading.get_native_id()  # the frame loop runs on the thread that builds the clock
        self.schedstat = os.path.exists(f"{_TASKS}/{os.getpid()}/schedstat") or os.path.exists("/proc/self/schedstat")
        self._stat_fd: Optional[int] = None
        try:
            self._stat_fd = os.open(_STAT, os.O_RDONLY)
        except OSError:
            self._stat_fd = None

    @property
    def sources(self) -> dict[str, str]:
        return {"run_wait": "schedstat" if self.schedstat else "unavailable: no /proc/self/task/*/schedstat here",
                "others_cpu": "/proc/stat" if self._stat_fd is not None else "unavailable: no /proc/stat here"}

    def _waits(self) -> dict[int, int]:
        if not self.schedstat:
            return {}
        out: dict[int, int] = {}
        try:
            tids = [int(t) for t in os.listdir(_TASKS)]
        except OSError:
            return out
        for tid in tids:
            fd = self._fds.get(tid)
            try:
                if fd is None:
                    fd = self._fds[tid] = os.open(f"{_TASKS}/{tid}/schedstat", os.O_RDONLY)
                out[tid] = int(os.pread(fd, 128, 0).split()[1])
            except (OSError, IndexError, ValueError):  # the thread ended between listing and reading
                self._forget(tid)
        for gone in set(self._fds) - set(tids):
            self._forget(gone)
        return out

    def _forget(self, tid: int) -> None:
        fd = self._fds.pop(tid, None)
        if fd is not None:
            os.close(fd)

    def _host_busy(self) -> Optional[int]:
        if self._stat_fd is None:
            return None
        try:
            fields = os.pread(self._stat_fd, 512, 0).split(b"\n", 1)[0].split()[1:]
            ticks = [int(v) for v in fields]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
        return sum(ticks[:8]) - ticks[3] - ticks[4]

    def read(self, before: bool) -> CpuReading:
        """Before a frame the /proc reads come first and the clocks last, after a frame the other way round, so that
        the CPU times span the frame's wall-clock interval and little more."""
        if before:
            waits, busy = self._waits(), self._host_busy()
            return CpuReading(thread_ns=time.thread_time_ns(), process_ns=time.process_time_ns(), wait_ns=waits,
                              host_busy_ticks=busy)
        thread_ns, process_ns = time.thread_time_ns(), time.process_time_ns()
        return CpuReading(thread_ns=thread_ns, process_ns=process_ns, wait_ns=self._waits(),
                          host_busy_ticks=self._host_busy())

    @staticmethod
    def between(before: CpuReading, after: CpuReading) -> FrameCpu:
        process_ms = (after.process_ns - before.process_ns) / 1e6
        waits = {t: after.wait_ns[t] - before.wait_ns[t] for t in after.wait_ns if t in before.wait_ns}
        others = None
        if before.host_busy_ticks is not None and after.host_busy_ticks is not None:
            others = max(0.0, (after.host_busy_ticks - before.host_busy_ticks) * _TICK_MS - process_ms)
        known = bool(waits) or bool(before.wait_ns)

        def largest(values: list[int]) -> Optional[float]:
            return max(values) / 1e6 if values else (0.0 if known else None)

        main = threading.get_native_id()
        carriers = [w for t, w in waits.items() if t not in HELPER_THREADS]
        return FrameCpu(cpu_ms=(after.thread_ns - before.thread_ns) / 1e6, process_cpu_ms=process_ms,
                        run_wait_ms=largest(list(waits.values())), others_cpu_ms=others,
                        main_wait_ms=largest([waits[main]] if main in waits else []),
                        frame_wait_ms=largest(carriers))

    def close(self) -> None:
        for tid in list(self._fds):
            self._forget(tid)
        if self._stat_fd is not None:
            os.close(self._stat_fd)
            self._stat_fd = None
