"""The result schema: one Session per `harness run`, one RunResult per configuration.

The schema has its own version (not the package version): bump SCHEMA_VERSION whenever a field
changes meaning or disappears, so that `harness report` / `harness compare` can refuse or adapt.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal, Optional

from pydantic import ConfigDict, Field

from harness.contract.wire import (
    AdmissionSample,
    ArchitectureFacts,
    EngineInfo,
    FidelityReading,
    ProbeCheck,
    TelemetrySeries,
)
from harness.records.base import Record
from harness.records.capacity import CapacityResult
from harness.records.config import RunConfig
from harness.records.identity import Measurement, measurement_of
from harness.records.machine import Machine
from harness.records.plan import PlanCheck, RunPlan
from harness.records.scenario import Scenario
from harness.records.telemetry import SoakSummary, TelemetrySummary
from harness.records.verdict import Verdict

SCHEMA_VERSION = 5  # 2: wire records, repeat processes, measurement keys, frames as measured; 3: typed scenario;
# 4: time to first audio split into first_audio (per call) and cold_start (per server); 5: output fidelity against
# the bf16 reference (RunMetrics.fidelity), the scenario's input and fidelity criteria
SCHEMA_NAME = "harness.results"

# interrupted: the session was stopped (Ctrl-C, SIGTERM, SIGHUP) while this run measured; its frames are kept, never
# judged (the verdict treats it as a run that did not finish)
RunStatus = Literal["ok", "failed", "skipped", "interrupted"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Percentiles(Record):
    """Milliseconds. Linear interpolation between order statistics (numpy's default method).

    Built from `harness.stats.percentiles.summarize` (stats import no records): attributes are read as is."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    p50: float
    p90: float
    p99: float
    max: float
    min: float
    mean: float
    std: float


class CudaMetrics(Record):
    device_name: str
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    total_bytes: int
    device_used_bytes: Optional[int] = Field(
        default=None, description="whole device as the driver reported it after the frames: CUDA context and "
                                  "other processes included (compare with the planner's device total)")
    stage_p50_ms: dict[str, float] = Field(
        default_factory=dict, description="stage times measured with CUDA events, p50 over measured frames")


class ProcessRun(Record):
    """One worker process of a run repeated `repeat: N` times: noise between processes is measured, not assumed."""

    pid: Optional[int] = None
    frames: int = Field(description="measured frames of this process; RunMetrics.samples_ms holds them in order")
    p50_ms: float
    p99_ms: float


class PrefillMetrics(Record):
    """The persona prefill before the call's first frame, as the server steps it."""

    steps: int = Field(description="voice + silence + text + silence LM steps")
    voice_steps: int
    silence_steps: int
    text_steps: int
    text_tokens_estimated: bool = False
    seconds: float = Field(description="wall time of the prefill, the server's waits included")
    wait_s: float = Field(description="of which the server's liveness waits (10 ms before each step)")
    voice_encode_ms: float = 0.0
    step_p50_ms: float
    step_p99_ms: float
    context_frames: int = Field(description="context the prompt used up before the conversation starts")
    context_capacity: int = 0


class FrameCpuSamples(Record):
    """Per measured frame (in the order of samples_ms), the evidence that tells a starved process from slow code:
    CPU time beside wall time, run-queue wait, other processes' CPU. A list the worker could not read is empty
    (`sources` says why)."""

    cpu_ms: list[float] = Field(default_factory=list, description="main thread CPU time over the frame's interval")
    stage_cpu_ms: dict[str, list[float]] = Field(default_factory=dict)
    process_cpu_ms: list[float] = Field(default_factory=list, description="every thread: can exceed wall time")
    run_wait_ms: list[float] = Field(default_factory=list, description="largest wait of any thread for a CPU "
                                                                        "while runnable (Linux schedstat)")
    others_cpu_ms: list[float] = Field(default_factory=list, description="CPU time the rest of the host used "
                                                                          "(/proc/stat, 10 ms ticks)")
    main_wait_ms: list[float] = Field(default_factory=list, description="the main thread's wait for a CPU")
    frame_wait_ms: list[float] = Field(default_factory=list, description="largest wait of the threads that carry "
                                                                          "the frame (main thread, torch's pool; "
                                                                          "not the harness's sampler)")
    cores: int = Field(default=0, description="CPUs the worker may run on (its affinity); 0: not read")
    threads: int = Field(default=0, description="torch intra-op threads of the run, every process together; "
                                                "0: not read")
    gc_ms: list[float] = Field(default_factory=list, description="the process's own garbage collections")
    sources: dict[str, str] = Field(default_factory=dict)


class FirstAudio(Record):
    """What every call pays before its first audio, as the server runs it: the voice prompt's encoding, the persona
    prefill (its steps and the server's liveness waits) and the call's first frame. Not the server's start."""

    voice_encode_s: float = Field(description="Mimi encode of a .wav voice prompt (0 with voice embeddings)")
    prefill_s: float = Field(description="the persona prefill as the server steps it, its waits included")
    first_frame_s: float
    per_call_s: float = Field(description="their sum: from a call's connection to its first audio")
    synthetic: bool = Field(description="measured with synthetic weights: the compute of the real model, "
                                        "not its values")


class ColdStart(Record):
    """What starting a server costs once, before any call: imports, model load, warmup."""

    import_s: Optional[float] = Field(description="importing torch and moshi in the worker (None: not recorded)")
    load_s: float = Field(description="building the models and their weights")
    warmup_s: float = Field(description="the warmup frames (compilation and CUDA-graph capture included)")
    total_s: float
    synthetic: bool = Field(description="synthetic weights are generated, not read: a real checkpoint's load "
                                        "reads gigabytes from disk instead")


class RunMetrics(Record):
    frames: int
    warmup_frames: int
    frame_budget_ms: float
    audio_s: float = Field(default=0.0, description="seconds of audio the measured frames carry (frames x budget)")
    ms_per_step: Percentiles
    rtf: float = Field(description="p50 step time / frame budget; below 1 is faster than real time")
    rtf_p99: float
    stage_p50_ms: dict[str, float]
    peak_rss_bytes: int
    rss_after_load_bytes: int
    load_s: float
    first_step_s: float
    warmup_s: float
    stopped_early: str = Field(default="", description="why the worker measured fewer frames than asked: the run "
                                                         "was certainly not real time (harness.contract.stopping)")
    late_start_frames: int = Field(default=0, description="pace realtime: frames that started late because the "
                                                          "previous one overran")
    samples_ms: list[float]
    stage_samples_ms: dict[str, list[float]]
    frame_start_s: list[float] = Field(default_factory=list, description="measured frames' start, telemetry clock")
    cuda: Optional[CudaMetrics] = None
    frame_cpu: Optional["FrameCpuSamples"] = Field(
        default=None, description="per measured frame, whether the process was running (absent in older files)")
    telemetry: Optional[TelemetrySeries] = None
    telemetry_summary: Optional[TelemetrySummary] = None
    soak: Optional[SoakSummary] = None
    prefill: Optional[PrefillMetrics] = None
    first_frame_ms: Optional[float] = Field(default=None, description="the conversation's first frame")
    first_audio: Optional[FirstAudio] = Field(default=None, description="per call: voice encode + prefill + the "
                                                                        "first frame (the server already started)")
    cold_start: Optional[ColdStart] = Field(default=None, description="once per server: imports + load + warmup")
    processes: list[ProcessRun] = Field(
        default_factory=list, description="one entry per worker process (scenario `repeat`); samples_ms is their "
                                          "concatenation in this order")
    admission: Optional[AdmissionSample] = Field(default=None, description="a session joining mid-run (lockstep)")
    capacity: Optional[CapacityResult] = Field(default=None, description="capacity search: sessions in real time")
    fidelity: Optional[FidelityReading] = Field(
        default=None, description="the output against the bf16 eager reference of the same model, weights and input, "
                                  "teacher-forced after the timed frames (None: not measured, or an older file)")


class Diagnosis(Record):
    kind: str = Field(description="signature name: cuda_oom, oom, no_kernel_image, triton, ..., unknown")
    cause: str
    remedy: str


class RunResult(Record):
    name: str
    config: RunConfig
    status: RunStatus
    reason: str = ""
    worker_pid: Optional[int] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    stderr_tail: str = ""
    diagnosis: Optional[Diagnosis] = None
    metrics: Optional[RunMetrics] = None
    partial_samples_ms: list[float] = Field(
        default_factory=list, description="frame times received before a worker failed (warmup included)")
    kept_samples_ms: list[float] = Field(
        default_factory=list, description="an interrupted run: every measured frame (warmup excluded) of its processes "
                                          "in order, finished ones and the one cut short; kept, not judged")
    kept_process_frames: list[int] = Field(
        default_factory=list, description="an interrupted run: how many of kept_samples_ms each process measured")
    screen_frames: Optional[int] = Field(
        default=None, description="measured for the screen only (this many frames asked), not to the certifying "
                                  "length: the screen did not pick it (see screening)")
    screening: str = Field(default="", description="what the screen decided for this run and why "
                                                   "(harness.verdict.screen)")
    engine: Optional[EngineInfo] = None
    plan: Optional[RunPlan] = Field(default=None, description="the planner's prediction for this machine")
    plan_check: Optional[PlanCheck] = Field(default=None, description="prediction beside measurement (ok runs)")
    started_at: Optional[datetime] = None
    wall_s: Optional[float] = None
    measurement_key: str = Field(default="", description="hash of everything that changes the measurement")
    resumed: bool = Field(default=False, description="taken from an earlier session by --resume, not re-measured")


class Session(Record):
    schema_name: str = SCHEMA_NAME
    schema_version: int = SCHEMA_VERSION
    harness_version: str
    created_at: datetime
    updated_at: datetime
    state: Literal["running", "complete", "interrupted"]
    command: list[str]
    scenario_path: str
    scenario: Scenario = Field(description="the scenario as loaded (paths resolved), typed")
    weights: str
    frames: Optional[int] = Field(default=None, description="measured frames asked of each worker (criteria "
                                                            "minimums and --frames applied); metrics say what ran")
    warmup_frames: Optional[int] = None
    machine: Machine
    probe: list[ProbeCheck] = Field(default_factory=list)
    architecture: Optional[ArchitectureFacts] = None
    runs: list[RunResult] = Field(default_factory=list)
    target_plans: list[RunPlan] = Field(default_factory=list, description="the planner's view of the scenario's "
                                                                         "target machine, when it declares one")
    confirmation: Optional[RunResult] = Field(
        default=None, description="the recommended configuration run again at pace: realtime, to confirm a GO found "
                                  "at pace: fast (not one of `runs`: never ranked)")
    verdict: Optional[Verdict] = None

    def measurement(self, run: RunResult) -> Measurement:
        """The identity of `run` as this session measured it (harness.records.identity)."""
        # files that did not record the frames asked of each worker measured the scenario's own counts
        frames = self.frames if self.frames is not None else self.scenario.measured_frames
        if run.screen_frames is not None:  # screened only: measured to the screen's length, not the session's
            frames = run.screen_frames
        warmup = self.warmup_frames if self.warmup_frames is not None else self.scenario.warmup_frames
        return measurement_of(self.scenario, run.config, weights=self.weights, frames=frames, warmup=warmup,
                              engine=run.engine)
