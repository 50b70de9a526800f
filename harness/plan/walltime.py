"""How long `harness run SCENARIO` takes to a verdict, before running it, in the order the session measures: probe,
the leader (the predicted best of the frame the verdict recommends first, measured straight to the certifying
length), the screen of the others, the certifying frames of what decides (`certify: decision`: the first frame in
the order of recommendation; `every-frame`: each frame's best), the confirmation at pace: realtime. Each worker
pays its start: process and imports, weights, compile, warmup, persona prefill. Step times are the planner's
predicted p50s; the fixed costs are the constants below (their sources beside them), or the cold starts an earlier
run of the same scenario measured on the same hardware (`harness plan --results DIR`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from harness.contract.presets import GRAPH_WARMUP_FRAMES
from harness.knowledge.deploy import missing_kernels
from harness.records.config import Device, RunConfig, Serving
from harness.records.plan import RunPlan
from harness.records.scenario import CertifyScope, Pace, Scenario
from harness.records.schema import ColdStart
from harness.verdict.confirm import confirm_frames
from harness.verdict.screen import decision_order, frames_to_measure, leader, screens

PROBE_S = 10.0  # `harness run`'s probe worker: 8.4 s measured on the 2-core CI machine (issue 29)
# A worker's process (interpreter, the harness's worker modules, the job and its reply) and its torch + moshi
# imports: 4.7 s per worker measured on the 2-core CI machine (issue 29); import_s alone 1.05-1.93 s over 12 workers
# on the 2-core development Xeon (2026-12-06; personaplex-tiny/-small, moshi-tiny; page cache warm).
PROCESS_S = 4.0
IMPORT_S = 2.0
# moshi builds the LM and Mimi (on the meta device for synthetic weights, then allocated on the target). load_s
# with synthetic weights measured on the 2-core development Xeon (2026-12-06, torch 2.9.1 CPU, fp32/bf16):
# personaplex-tiny 1.02-1.96 s over 10 workers (1.0-1.1 s on a quiet machine), personaplex-small 1.04 s,
# moshi-tiny 0.76 s: the build, not the bytes, is what costs there. A 7B's 32 layers are built the same way, so a
# few seconds on a GPU host (3 s: a rough figure, not measured on a GPU yet).
MODEL_BUILD_S = {"cuda": 3.0, "cpu": 1.0}
# Synthetic weights (the default) are tiled in place on the device by memcpy (harness/worker/engine/synthetic.py):
# each byte is written once and read about once, so half the device's memory bandwidth (a GPU's table figure;
# the host's measured bandwidth, or DEFAULT_HOST_GBS, on a CPU).
SYNTHETIC_FILL_SHARE = 0.5
DEFAULT_HOST_GBS = 10.0  # a server's host memory bandwidth when the target's is not known (DDR4/5, one socket)
# A checkpoint (`weights:` a file or hf://) is read from disk: 1 GB/s, a local NVMe SSD's sustained read order (a
# page-cached file reads faster, a network disk slower); 16.7 GB of PersonaPlex-7B bf16 take ~17 s.
CHECKPOINT_BYTES_PER_S = 1.0e9
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


@dataclass(frozen=True)
class Costs:
    """What the fixed costs rest on: the target's memory bandwidths (synthetic weights' fill) and, per run name,
    cold starts measured by an earlier run of this scenario on the same hardware."""

    device_gbs: Optional[float] = None  # the GPU's memory bandwidth
    host_gbs: Optional[float] = None  # the host's
    measured: dict[str, ColdStart] = field(default_factory=dict)
    measured_in: str = ""  # where those were read


def weights_s(run: RunConfig, plan: RunPlan, scenario: Scenario, costs: Costs) -> float:
    """Building the model and its weights: synthetic weights filled at memory speed, a checkpoint read from disk."""
    weights = plan.device_allocated_bytes or plan.host_peak_bytes
    device = "cuda" if run.device is Device.cuda else "cpu"
    if not scenario.uses_synthetic_weights:
        return MODEL_BUILD_S[device] + weights / CHECKPOINT_BYTES_PER_S
    gbs = (costs.device_gbs if device == "cuda" else costs.host_gbs) or DEFAULT_HOST_GBS
    return MODEL_BUILD_S[device] + weights / (gbs * 1e9 * SYNTHETIC_FILL_SHARE)


def worker_start_s(run: RunConfig, plan: RunPlan, step_ms: float, scenario: Scenario, warmup: int,
                   costs: Costs = Costs()) -> float:
    """One worker from its start to its first measured frame: process and imports, weights, compile, warmup (or the
    cold start measured for this run), persona prefill."""
    persona = scenario.effective_persona
    prefill_steps = (persona.steps or 127) if persona is not None else 0
    wait_s = persona.server_wait_ms / 1e3 if persona is not None else 0.0
    prefill = prefill_steps * step_ms / 1e3 + prefill_steps * wait_s
    cold = costs.measured.get(run.name)
    if cold is not None:
        return PROCESS_S + (cold.import_s if cold.import_s is not None else IMPORT_S) + cold.load_s \
            + cold.warmup_s + prefill
    seconds = PROCESS_S + IMPORT_S + weights_s(run, plan, scenario, costs)
    if run.compile:
        seconds += COMPILE_S["cuda" if run.device is Device.cuda else "cpu"]
    if run.cuda_graphs:
        seconds += GRAPH_CAPTURE_S
        warmup = max(warmup, GRAPH_WARMUP_FRAMES)
    return seconds + warmup * step_ms / 1e3 + prefill


def first_look(scenario: Scenario) -> int:
    """Where the worker's early stop first looks (harness.contract.stopping.looks): a run predicted to miss its
    deadline in most frames is predicted to stop there."""
    c = scenario.criteria
    return max(c.min_frames, 2 * c.burst_frames)


def runs_on(compute_capability: Optional[str]) -> Callable[[Serving], bool]:
    """Whether a frame's server has kernels for the target GPU as its package ships (no GPU: every server)."""
    return lambda serving: missing_kernels(serving.value, compute_capability) is None


Timed = tuple[RunConfig, RunPlan, float]


def predict_wall_time(scenario: Scenario, runs: list[RunConfig], plans: list[RunPlan], *,
                      frames: Optional[int] = None, warmup: Optional[int] = None, costs: Costs = Costs(),
                      compute_capability: Optional[str] = None) -> WallTime:
    """The whole scenario's predicted wall time, stage by stage; runs without a predicted step are left out and
    named in the notes."""
    out = WallTime(stages=[WallStage("probe", [], PROBE_S)])
    certifying = frames_to_measure(scenario, frames)
    warmup = warmup or scenario.warmup_frames
    deadline = scenario.criteria.deadline_ms(scenario.frame_budget_ms)
    paced = scenario.pace is Pace.realtime
    timed: list[Timed] = []
    for run, plan in zip(runs, plans):
        if not plan.feasible:
            out.notes.append(f"{run.name}: predicted not to work here; skipped at run time (0 s)")
        elif run.capacity is not None:
            out.notes.append(f"{run.name}: a capacity search, not predicted here (its probes: --time-limit bounds them)")
        elif plan.predicted_step_ms is None:
            out.notes.append(f"{run.name}: no predicted step time on this target; left out of the total")
        else:
            timed.append((run, plan, plan.predicted_step_ms.p50))

    def start(t: Timed) -> float:
        return worker_start_s(t[0], t[1], t[2], scenario, warmup, costs)

    def frame_s(step: float) -> float:
        return (scenario.frame_budget_ms if paced else step) / 1e3

    here = runs_on(compute_capability)
    screen = screens(scenario, [r for r, _, _ in timed], certifying, explicit=frames is not None)
    lead = leader([(r, s) for r, _, s in timed], scenario.preset, deadline, here) if screen else None
    first = screen or certifying
    led = [t for t in timed if lead is not None and t[0].name == lead.name]
    if led:
        out.stages.append(WallStage(f"leader: {certifying} frames, the predicted best of the "
                                    f"{lead.serving.label}, measured first", [lead.name],  # type: ignore[union-attr]
                                    start(led[0]) + certifying * frame_s(led[0][2]) * scenario.repeat, certifying))
    others = [t for t in timed if not led or t[0].name != led[0][0].name]
    seconds = sum(start(t) + (min(first, first_look(scenario)) if t[2] > deadline else first) * frame_s(t[2])
                  * scenario.repeat for t in others)
    if others:
        out.stages.append(WallStage(f"{'screen' if screen else 'measure'}: {first} frames each (a run predicted over "
                                    f"its {deadline:g} ms deadline stops at {first_look(scenario)})",
                                    [r.name for r, _, _ in others], seconds, first))
    realtime = [t for t in timed if t[2] <= deadline]
    best: dict[Serving, Timed] = {}
    for t in realtime:
        if t[0].serving not in best or t[2] < best[t[0].serving][2]:
            best[t[0].serving] = t
    if screen is not None and best:
        if scenario.certify is CertifyScope.decision:
            order = decision_order(scenario.preset, best, here)
            certify = [] if led else [best[order[0]]]
            why = ("the frame recommended first only (certify: decision): the leader is certified as measured, and "
                   "only a screened run within noise of it (or a leader that fails) adds a certifying process")
        else:
            certify = [t for s, t in best.items() if not led or s is not led[0][0].serving]
            why = "the best of every other frame (certify: every-frame)"
        more = certifying - screen
        if certify:
            out.stages.append(WallStage(f"certify: {more} more frames for the predicted best of "
                                        + ("the frame recommended first" if scenario.certify is CertifyScope.decision
                                           else "each other frame"),
                                        [t[0].name for t in certify],
                                        sum(start(t) + more * frame_s(t[2]) for t in certify), more))
        out.notes.append(f"certifying: {why}; each run within the screen's noise of a frame's best adds its own "
                         "worker start and certifying frames")
    if scenario.pace is Pace.fast and realtime:
        n = confirm_frames(scenario)
        if n:
            confirmed = led[0] if led else min(realtime, key=lambda t: t[2])
            out.stages.append(WallStage(f"confirm at pace: realtime: {n} frames", [confirmed[0].name],
                                        start(confirmed) + n * scenario.frame_budget_ms / 1e3, n))
    out.notes.append(_fixed_costs_note(scenario, costs, [t[0].name for t in timed]))
    return out


def _fixed_costs_note(scenario: Scenario, costs: Costs, names: list[str]) -> str:
    measured = [n for n in names if n in costs.measured]
    weights = (f"synthetic weights built in {MODEL_BUILD_S['cuda']:g} s (GPU) / {MODEL_BUILD_S['cpu']:g} s (CPU) and "
               f"filled at half the memory bandwidth" if scenario.uses_synthetic_weights else
               f"the checkpoint read at {CHECKPOINT_BYTES_PER_S / 1e9:g} GB/s after a {MODEL_BUILD_S['cuda']:g} s "
               "build")
    note = (f"fixed costs assumed: probe {PROBE_S:g} s; per worker {PROCESS_S + IMPORT_S:g} s of process and imports, "
            f"{weights}, torch.compile {COMPILE_S['cuda']:g} s on a GPU ({COMPILE_S['cpu']:g} s on a CPU), CUDA graph "
            f"capture {GRAPH_CAPTURE_S:g} s, warmup and persona prefill steps at the predicted p50 (rough figures, "
            "not measured on the target: harness/plan/walltime.py says where each comes from)")
    if measured:
        note += (f"; cold starts (imports, load, warmup) measured in {costs.measured_in} used for "
                 + ", ".join(measured))
    return note
