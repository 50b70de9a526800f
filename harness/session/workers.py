"""Worker processes of a run: one (or `repeat` of them) after another, or `count` server processes at once behind
a start barrier; what the run in flight has measured, kept when the session is interrupted."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional, Sequence

from harness.contract.wire import BenchReply, ProgressEvent, to_json
from harness.launcher.environment import worker_env
from harness.launcher.spawn import kill_group, run_worker
from harness.records.config import RunConfig
from harness.records.schema import Machine, RunResult, utc_now
from harness.records.validate import parse_wire
from harness.scenario.load import LoadedScenario
from harness.session import assemble
from harness.session.clock import SessionClock
from harness.session.jobs import JobBuilder
from harness.session.processes import ProcessBatch

WORK_DIR = ".work"
LOG_DIR = "logs"


class EventSink:
    """Whatever shows a worker's progress (harness.session.display.RunDisplay, or nothing)."""

    def event(self, event: ProgressEvent) -> None:
        pass


@dataclass(frozen=True)
class WorkerHooks:
    """Callbacks for whoever embeds the runner (tests, tools): worker started, worker event."""

    started: Callable[[str, int], None] = lambda run_name, pid: None
    event: Callable[[str, ProgressEvent], None] = lambda run_name, event: None


@dataclass
class InFlight:
    """The run being measured: its finished processes and the measured frames the running one has reported."""

    run: RunConfig
    started_at: datetime
    finished: list[assemble.ProcessOutcome] = field(default_factory=list)
    measured_ms: list[float] = field(default_factory=list)  # the running process's frames after warmup
    pids: set[int] = field(default_factory=set)  # processes started and not yet reaped (K measured together)


class Workers:
    def __init__(self, loaded: LoadedScenario, out_dir: Path, jobs: JobBuilder, clock: SessionClock,
                 timeout_of: Callable[[RunConfig], float], hooks: WorkerHooks) -> None:
        self.loaded = loaded
        self.out_dir = out_dir
        self.jobs = jobs
        self.clock = clock
        self.timeout_of = timeout_of  # a run's configured timeout, before --time-limit cuts it
        self.hooks = hooks
        self.machine: Optional[Machine] = None
        self.in_flight: Optional[InFlight] = None
        self.last: list[assemble.ProcessOutcome] = []  # the processes of the last run `execute` measured

    def timeout(self, run: RunConfig) -> float:
        configured = self.timeout_of(run)
        left = self.clock.left()
        return configured if left is None else max(1.0, min(configured, left))

    def process(self, run: RunConfig, display: EventSink, index: int, frames: int,
                barrier: Optional[Path] = None, timeout_s: Optional[float] = None, paced: bool = False,
                on_started: Optional[Callable[[int], None]] = None) -> assemble.ProcessOutcome:
        repeat = self.loaded.scenario.repeat
        label = run.name if (repeat == 1 and index == 0) or barrier is not None else f"{run.name}.{index + 1}"
        label += ".realtime" if paced else ""  # a confirmation run keeps its own folder
        work = self.out_dir / WORK_DIR / label
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        env = worker_env(run, self.loaded.scenario.torch_threads)
        timeout_s = self.timeout(run) if timeout_s is None else timeout_s
        # Fidelity once per configuration: its first process (a screen's), not a certifying process, a
        # confirmation, a capacity probe or K servers.
        fidelity = index == 0 and not paced and barrier is None and run.capacity is None
        job = self.jobs.job(run, work, env, frames, timeout_s, barrier, paced, fidelity)
        (work / "job.json").write_text(to_json(job))
        flight = self.in_flight if barrier is None else None

        def on_event(event: ProgressEvent) -> None:
            if flight is not None and event.event == "frame" and not event.warmup:
                flight.measured_ms.append(event.ms)
            display.event(event)
            self.hooks.event(run.name, event)

        def on_start(pid: int) -> None:
            if flight is not None:
                flight.pids.add(pid)
            if on_started is not None:
                on_started(pid)
            self.hooks.started(run.name, pid)

        outcome = run_worker(work / "job.json", env, timeout_s, self.out_dir / LOG_DIR, label,
                             on_event=on_event, on_start=on_start,
                             memory_limit_bytes=self.loaded.scenario.host_memory_limit_bytes,
                             python=run.python or sys.executable)
        if flight is not None:
            flight.pids.discard(outcome.pid)
        reply: Optional[BenchReply] = None
        reply_error = ""
        try:
            reply = parse_wire(BenchReply, Path(job.reply_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass  # the worker died before replying: its exit code and stderr tell why
        except (OSError, ValueError) as exc:  # WireError is a ValueError: keep its named message for the record
            reply_error = str(exc)
        shutil.rmtree(work / "scratch", ignore_errors=True)  # offloaded weights can be gigabytes
        return assemble.ProcessOutcome(outcome, reply, reply_error)

    def execute(self, run: RunConfig, display: EventSink, frames: int, paced: bool = False,
                earlier: Sequence[assemble.ProcessOutcome] = (), processes: Optional[int] = None) -> RunResult:
        """`processes` worker processes (the scenario's `repeat` unless given) one after another; `earlier`: the
        same configuration's processes already measured (a screen), which these add to."""
        flight = InFlight(run=run, started_at=utc_now(), finished=list(earlier))
        self.in_flight = flight
        timeout_s = self.timeout(run)
        count = self.loaded.scenario.repeat if processes is None else processes
        for index in range(len(earlier), len(earlier) + count):
            timeout_s = self.timeout(run)  # cut to the time left under --time-limit as each process starts
            flight.measured_ms = []
            flight.finished.append(self.process(run, display, index, frames, timeout_s=timeout_s, paced=paced))
            if not flight.finished[-1].ok:
                break  # a configuration that failed once is reported, not retried
        self.in_flight = None
        self.last = flight.finished
        return assemble.from_workers(run, flight.finished, frame_budget_ms=self.loaded.scenario.frame_budget_ms,
                                     warmup_frames=self.jobs.warmup_for(run), timeout_s=timeout_s,
                                     started_at=flight.started_at, machine=self.machine)

    def interrupted(self, why: str) -> Optional[RunResult]:
        """The run in flight when the session was interrupted, with every frame it measured (None: none was)."""
        flight, self.in_flight = self.in_flight, None
        if flight is None:
            return None
        for pid in flight.pids:  # run_worker stops its own worker; processes started in threads are stopped here
            kill_group(pid, signal.SIGKILL)
        return assemble.interrupted(flight.run, flight.finished, flight.measured_ms, why, flight.started_at)

    def together(self, run: RunConfig, count: int, frames: int) -> ProcessBatch:
        """`count` one-call server processes (batch 1) at once: each its own worker, started together by a barrier
        after warmup (the parent writes `go` once all are ready, or once the rest can no longer get there)."""
        barrier = self.out_dir / WORK_DIR / f"{run.name}.p{count}.barrier"
        shutil.rmtree(barrier, ignore_errors=True)
        barrier.mkdir(parents=True)
        runs = [run.model_copy(update={"name": f"{run.name}.p{count}.{i + 1}", "batch_size": 1, "capacity": None})
                for i in range(count)]
        outcomes: list[Optional[assemble.ProcessOutcome]] = [None] * count
        started = utc_now()
        pids: set[int] = set()

        def one(i: int) -> None:
            outcomes[i] = self.process(runs[i], EventSink(), 0, frames, barrier, on_started=pids.add)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
        try:
            for thread in threads:
                thread.start()
            together = True
            while any(t.is_alive() for t in threads):
                ready = len(list(barrier.glob("ready.*")))
                gone = sum(1 for t in threads if not t.is_alive())  # ended before the barrier: it cannot come
                if ready + gone >= count and not (barrier / "go").exists():
                    together = gone == 0
                    (barrier / "go").touch()
                time.sleep(0.05)
        except BaseException:
            # The workers run in threads that an interrupt does not reach: stop them here, with their groups,
            # so that no server process outlives the session holding GPU memory.
            for pid in pids:
                kill_group(pid, signal.SIGKILL)
            raise
        for thread in threads:
            thread.join()
        results = [assemble.from_workers(runs[i], [o], frame_budget_ms=self.loaded.scenario.frame_budget_ms,
                                         warmup_frames=self.jobs.warmup, timeout_s=self.timeout(runs[i]),
                                         started_at=started, machine=self.machine)
                   for i, o in enumerate(outcomes) if o is not None]
        together &= all(o is not None and o.reply is not None and o.reply.barrier_released is not False
                        for o in outcomes)
        shutil.rmtree(barrier, ignore_errors=True)
        return ProcessBatch(results=results, together=together)
