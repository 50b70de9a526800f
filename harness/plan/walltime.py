"""How long `harness run SCENARIO` takes to a verdict, before running it: probe, every worker's start (imports,
weights, compile, warmup, persona prefill), the screen, the certifying frames of each frame's best, the
confirmation at pace: realtime. Step times are the planner's predicted p50s; the fixed costs below are rough figures,
stated, not measured on the target (no GPU run has measured them yet: benchmarks/gpu/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.contract.presets import GRAPH_WARMUP_FRAMES
from harness.records.config import Device, RunConfig
from harness.records.plan import RunPlan
from harness.records.scenario import Pace, Scenario
from harness.verdict.confirm import confirm_frames
from harness.verdict.screen import frames_to_measure, screens

PROBE_S = 10.0  # `harness run`'s probe worker: 8.4 s measured on the 2-core CI machine (issue 29)
WORKER_START_S = 6.0  # a worker's interpreter, torch and moshi imports (4.7 s measured per worker on that machine)
WEIGHT_BYTES_PER_S = 1.0e9  # building the model and its weights (synthetic init or a local checkpoint read): 1 GB/s
COMPILE_S = {"cuda": 90.0, "cpu": 30.0}  # torch.compile of the frame, the first warmup frames (a rough figure)
GRAPH_CAPTURE_S = 5.0  # CUDA graphs captured during warmup, beside their warmup frames


@dataclass(frozen=True)
class WallStage:
    what: str
    runs: list[str]
    seconds: float
    frames: int = 0


@dataclass
class WallTime:
    stages: list[WallStage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return sum(s.seconds for s in self.stages)


def worker_start_s(run: RunConfig, plan: RunPlan, step_ms: float, scenario: Scenario, warmup: int) -> float:
    """One worker from its start to its first measured frame: imports, weights, compile, warmup, persona prefill."""
    weights = plan.device_allocated_bytes or plan.host_peak_bytes
    seconds = WORKER_START_S + weights / WEIGHT_BYTES_PER_S
    if run.compile:
        seconds += COMPILE_S["cuda" if run.device is Device.cuda else "cpu"]
    if run.cuda_graphs:
        seconds += GRAPH_CAPTURE_S
        warmup = max(warmup, GRAPH_WARMUP_FRAMES)
    persona = scenario.effective_persona
    prefill_steps = (persona.steps or 127) if persona is not None else 0
    wait_s = persona.server_wait_ms / 1e3 if persona is not None else 0.0
    return seconds + (warmup + prefill_steps) * step_ms / 1e3 + prefill_steps * wait_s


def first_look(scenario: Scenario) -> int:
    """Where the worker's early stop first looks (harness.contract.stopping.looks): a run predicted to miss its
    deadline in most frames is predicted to stop there."""
    c = scenario.criteria
    return max(c.min_frames, 2 * c.burst_frames)


def predict_wall_time(scenario: Scenario, runs: list[RunConfig], plans: list[RunPlan], *,
                      frames: Optional[int] = None, warmup: Optional[int] = None) -> WallTime:
    """The whole scenario's predicted wall time, stage by stage; runs without a predicted step are left out and
    named in the notes."""
    out = WallTime(stages=[WallStage("probe", [], PROBE_S)])
    certifying = frames_to_measure(scenario, frames)
    warmup = warmup or scenario.warmup_frames
    deadline = scenario.criteria.deadline_ms(scenario.frame_budget_ms)
    paced = scenario.pace is Pace.realtime
    timed: list[tuple[RunConfig, RunPlan, float]] = []
    for run, plan in zip(runs, plans):
        if not plan.feasible:
            out.notes.append(f"{run.name}: predicted not to work here; skipped at run time (0 s)")
        elif run.capacity is not None:
            out.notes.append(f"{run.name}: a capacity search, not predicted here (its probes: --time-limit bounds them)")
        elif plan.predicted_step_ms is None:
            out.notes.append(f"{run.name}: no predicted step time on this target; left out of the total")
        else:
            timed.append((run, plan, plan.predicted_step_ms.p50))
    screen = screens(scenario, [r for r, _, _ in timed], certifying, explicit=frames is not None)
    first = screen or certifying
    seconds = 0.0
    for run, plan, step in timed:
        measured = min(first, first_look(scenario)) if step > deadline else first
        frame_s = (scenario.frame_budget_ms if paced else step) / 1e3
        seconds += worker_start_s(run, plan, step, scenario, warmup) + measured * frame_s * scenario.repeat
    out.stages.append(WallStage(f"{'screen' if screen else 'measure'}: {first} frames each (a run predicted over "
                                f"its {deadline:g} ms deadline stops at {first_look(scenario)})",
                                [r.name for r, _, _ in timed], seconds, first))
    realtime = [(r, p, s) for r, p, s in timed if s <= deadline]
    best: dict[str, tuple[RunConfig, RunPlan, float]] = {}
    for run, plan, step in realtime:
        if run.serving.value not in best or step < best[run.serving.value][2]:
            best[run.serving.value] = (run, plan, step)
    if screen is not None and best:
        more = certifying - screen
        seconds = sum(worker_start_s(r, p, s, scenario, warmup) + more * (scenario.frame_budget_ms if paced else s)
                      / 1e3 for r, p, s in best.values())
        out.stages.append(WallStage(f"certify: {more} more frames for the predicted best of each frame",
                                    [r.name for r, _, _ in best.values()], seconds, more))
        out.notes.append("certifying assumes one run per frame measured; each run within the screen's noise of the "
                         "best adds its own worker start and certifying frames")
    if scenario.pace is Pace.fast and realtime:
        n = confirm_frames(scenario)
        if n:
            r, p, s = min(realtime, key=lambda t: t[2])
            out.stages.append(WallStage(f"confirm at pace: realtime: {n} frames", [r.name],
                                        worker_start_s(r, p, s, scenario, warmup) + n * scenario.frame_budget_ms / 1e3,
                                        n))
    out.notes.append(f"fixed costs assumed: probe {PROBE_S:g} s; per worker {WORKER_START_S:g} s of imports, weights at "
                     f"{WEIGHT_BYTES_PER_S / 1e9:g} GB/s, torch.compile {COMPILE_S['cuda']:g} s on a GPU "
                     f"({COMPILE_S['cpu']:g} s on a CPU), CUDA graph capture {GRAPH_CAPTURE_S:g} s, warmup and persona "
                     "prefill steps at the predicted p50 (rough figures, not measured on the target)")
    return out
