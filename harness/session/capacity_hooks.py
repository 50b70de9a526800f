"""A capacity search's probes (harness.session.capacity) as worker runs of this session: a lockstep batch at each
size, K server processes at once; each stops at the session's --time-limit."""

from __future__ import annotations

from typing import Callable, Optional

from harness.plan.target import PlanTarget
from harness.records.config import RunConfig
from harness.records.scenario import Pace
from harness.records.schema import RunResult, Session
from harness.records.store import write_session
from harness.scenario.load import LoadedScenario
from harness.session import capacity
from harness.session.clock import SessionClock
from harness.session.processes import ProcessBatch
from harness.session.size_search import OutOfTime
from harness.session.workers import EventSink, Workers


class SessionProbes:
    """capacity.ProbeRunner over this session's workers."""

    def __init__(self, workers: Workers, clock: SessionClock, display: EventSink, frames: int,
                 process_frames: int) -> None:
        self.workers = workers
        self.clock = clock
        self.display = display
        self.frames = frames
        self.process_frames = process_frames

    def _check_time(self) -> None:
        late = self.clock.out_of_time()
        if late is not None:
            raise OutOfTime(late)

    def probe(self, probe_run: RunConfig, sessions: int) -> RunResult:
        self._check_time()
        sized = probe_run.model_copy(update={"name": f"{probe_run.name}.s{sessions}", "batch_size": sessions})
        result = self.workers.execute(sized, self.display, self.frames)
        if result.status != "ok" and self.clock.out_of_time() is not None:
            raise OutOfTime(f"stopped at the session's --time-limit of {self.clock.limit_s:g} "
                            f"s ({result.reason or result.status})")
        return result

    def processes(self, probe_run: RunConfig, count: int) -> ProcessBatch:
        self._check_time()
        # At real-time pace a frame takes the whole budget: the scenario's frames, not the 459 that
        # certify (judged by p99 and said so unless they are that many).
        return self.workers.together(probe_run, count, self.process_frames)


def run_capacity(workers: Workers, clock: SessionClock, loaded: LoadedScenario, run: RunConfig, session: Session,
                 display: EventSink, note: Callable[[str], None], *, frames_option: Optional[int], frames: int,
                 plan_target: Optional[PlanTarget], gpu_hour_usd: Optional[float]) -> RunResult:
    """A capacity search: probes are this session's worker runs at each size."""
    scenario = loaded.scenario
    probe_frames = frames_option or frames  # judged by the timing rule; the ticks that would certify said beside
    probes = SessionProbes(workers, clock, display, probe_frames, probe_frames)

    def keep(partial: RunResult) -> None:
        """The search so far, on disk after every probe (atomically): an interrupt loses no finished probe."""
        session.runs = [r for r in session.runs if r.name != partial.name] + [partial]
        write_session(session, workers.out_dir)

    return capacity.capacity_run(probes, run, session, scenario.criteria, note=note, plan_target=plan_target,
                                 host_memory_limit_bytes=scenario.host_memory_limit_bytes, option_usd=gpu_hour_usd,
                                 paced=scenario.pace is Pace.realtime, torch_threads=scenario.torch_threads,
                                 keep=keep)
