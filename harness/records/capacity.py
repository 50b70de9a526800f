"""Capacity records: how many conversations one machine holds in real time, two ways, and what an hour costs.

- Server processes per machine (the stock deployment): K independent processes serving one call each, as
  NVIDIA's PersonaPlex server and PyPI moshi's server do (one call per process, behind a lock). Measured by
  running K workers at once at real-time pace, or predicted from memory and the single-process step time.
- Sessions in lockstep: one batched worker run (batch B = B sessions), so a tick (one batched frame) that misses
  the deadline is late for every session in it. Only a batching server (vllm-omni's, say) runs this; neither
  shipped server does.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.records.base import Record

# disturbed: the verdict's rule says re-run (the time the worker could not run explains the miss), twice in a row
ProbeVerdict = Literal["realtime", "late", "memory", "failed", "disturbed"]
# time_limit: `harness run --time-limit` stopped the search before a size failed (the result is a lower bound);
# interrupted: Ctrl-C or SIGTERM stopped it (or it is still running: what was written after each probe)
LimitedBy = Literal["time", "memory", "max_sessions", "failed", "time_limit", "interrupted", "disturbed"]
ProcessesMode = Literal["measure", "predict", "off"]

LOCKSTEP_NEEDS = ("needs a batching server (e.g. vllm-omni's): NVIDIA's PersonaPlex server and PyPI moshi's server "
                  "each serve one call per process")


class JoinSpec(Record):
    """A session joining a running batch: per-slot reset of the last slot, then its warm-up (persona prefill)."""

    mode: Literal["interleaved", "serial"] = Field(
        default="interleaved", description="interleaved: the joiner's prompt stepped inside the batch's ticks, one "
        "step per tick while the others stream (a batching server); serial: its whole prompt alone before the next "
        "tick, every other session stalled meanwhile (the worst case)")

    at_tick: int = Field(default=0, ge=0, description="measured tick at which the last slot is reset; 0: the middle")
    # At least 2: moshi's LMGen resets its batch-wide step counter with any slot and returns no tokens until it
    # passes the largest delay (1 in every preset), so a joining slot needs 2 steps before the next tick.
    warmup_steps: int = Field(default=6, ge=2, le=10_000, description="LM steps the joining slot takes alone "
                                                                       "before its first live tick (its prefill)")


class CapacitySpec(Record):
    """A run's `capacity:` block: search the largest lockstep batch that stays real time."""

    max_sessions: int = Field(default=64, ge=1, le=256, description="largest batch the search may try")
    gpu_hour_usd: Optional[float] = Field(default=None, gt=0, description="price of one GPU-hour (or one machine-hour "
                                                                          "on a CPU); default: the price table")
    join: Optional[JoinSpec] = Field(default=None, description="measure a session joining mid-run at each probe")
    processes: ProcessesMode = Field(default="measure", description="server processes per machine (the stock "
                                     "deployment): measure K one-call workers running at once, predict it from "
                                     "memory and the single-process step time, or off")
    max_processes: Optional[int] = Field(default=None, ge=1, le=256, description="largest K the process search may "
                                                                                 "try; default max_sessions")


class Admission(Record):
    """What admitting one caller cost the sessions already in the batch: its join (per-slot reset, then the persona
    prefill the server runs for a new connection) stalls them all, since every join step computes the batch."""

    slot: int
    at_tick: int = Field(description="measured tick index of the reset")
    warmup_steps: int = Field(description="LM steps the joining slot took alone (the persona's, when it ran one)")
    reset_ms: float = Field(description="per-slot reset of the streaming state (Mimi and LM)")
    prefill_ms: float = Field(default=0.0, description="the join's steps and the server's waits between them")
    stall_ms: float = Field(default=0.0, description="reset + prefill: the other sessions get no frame meanwhile")
    wait_ms: float = Field(default=0.0, description="of which the server's liveness waits (10 ms per step)")
    step_p50_ms: Optional[float] = Field(default=None, description="one join step at this batch (median)")
    others: int = Field(default=0, description="sessions already in the batch, who stall")
    frames_behind: int = Field(default=0, description="frames each other session falls behind: the stall plus the "
                                                      "admitting tick past the deadline, in frame periods")
    tick_ms: list[float] = Field(description="the admitting tick's own frame (the join not included)")
    late_ticks: int = 0
    how: str = Field(default="per-slot reset + warm-up steps", description="what the join ran")
    mode: Literal["interleaved", "serial"] = "serial"
    prompt_ticks: int = Field(default=0, description="interleaved: ticks that carried the joiner's prompt")
    prompt_tick_p50_ms: Optional[float] = Field(default=None, description="interleaved: those ticks' median")
    handshake_ms: float = Field(default=0.0, description="interleaved: the joiner's wait from its join to its first "
                                                         "live tick (its prompt's steps, one per tick)")


class CapacityProbe(Record):
    sessions: int
    verdict: ProbeVerdict
    ran: bool = Field(description="False: the planner said it cannot fit, recorded without running")
    ticks: int = 0
    tick_p50_ms: Optional[float] = None
    tick_p99_ms: Optional[float] = None
    late_ticks: int = 0
    peak_memory_bytes: Optional[int] = Field(default=None, description="GPU allocator peak, or host peak RSS")
    predicted_memory_bytes: Optional[int] = None
    certified: bool = Field(default=False, description="enough ticks with few enough late to certify the late-tick "
                                                       "target at the confidence")
    ticks_to_certify: Optional[int] = Field(default=None, description="more ticks needed; None: cannot certify")
    admission: Optional[Admission] = None
    judged_by: str = Field(default="", description="the rule the verdict used: the GO rule (with certification) "
                                                   "or p99 within the deadline only, said so")
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class CostLine(Record):
    gpu_hour_usd: float
    price_source: str
    sessions: int
    per_conversation_hour_usd: Optional[float] = Field(default=None, description="GPU-hour price / sessions")
    energy_j_per_audio_s: Optional[float] = Field(default=None, description="whole device, from NVML, as measured "
                                                                            "(at the run's pace)")
    idle_power_w: Optional[float] = Field(default=None, description="device power while idle between frames "
                                                                    "(the worker's idle window after warmup)")
    energy_wh_per_conversation_hour: Optional[float] = Field(default=None, description="at real-time pace: "
                                                             "compute energy + idle power for the rest of each frame")
    energy_note: str = ""


class ProcessProbe(Record):
    """K one-call server processes run at once (each its own worker, real-time pace, started together)."""

    processes: int
    verdict: ProbeVerdict
    ran: bool = Field(description="False: K processes predicted not to fit in memory, recorded without running")
    frames: int = Field(default=0, description="measured frames per process")
    step_p50_ms: Optional[float] = Field(default=None, description="median over the processes' p50")
    step_p99_ms: Optional[float] = Field(default=None, description="worst process's p99")
    late_frames: int = Field(default=0, description="over the deadline, all processes together")
    late_starts: int = Field(default=0, description="frames that could not start on their audio's arrival")
    certified: bool = Field(default=False, description="the late-frame share of all K processes' frames certified "
                                                       "by the GO rule's test")
    frames_to_certify: Optional[int] = Field(default=None, description="more frames (all processes together) that "
                                                                       "would certify it; None: certified or cannot")
    peak_memory_bytes: Optional[int] = Field(default=None, description="one process's peak (largest), host RSS or "
                                                                       "GPU allocator")
    together: bool = Field(default=True, description="every process reached the start barrier: the calls overlapped")
    joules_per_audio_s: Optional[float] = Field(default=None, description="whole device per second of audio of one "
                                                                          "stream, while all K ran (NVML)")
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class ProcessCapacity(Record):
    """Server processes per machine: the stock deployment figure."""

    max_realtime_processes: int
    how: Literal["measured", "predicted"]
    limited_by: LimitedBy
    judged_by: str = ""
    step_ms: Optional[float] = Field(default=None, description="one process's step time the prediction uses (p99)")
    per_process_bytes: Optional[int] = Field(default=None, description="one process's memory (peak)")
    capacity_bytes: Optional[int] = Field(default=None, description="memory the processes share")
    predicted_by_memory: Optional[int] = None
    predicted_by_time: Optional[int] = None
    prediction_rule: str = ""
    probes: list[ProcessProbe] = Field(default_factory=list)
    cost: Optional[CostLine] = None
    notes: list[str] = Field(default_factory=list)


class GpuSessions(Record):
    """The planner's prediction for one GPU of the table: sessions that fit by memory (predicted, not measured)."""

    gpu: str
    vram_bytes: int
    sessions_by_memory: int
    per_session_bytes: int
    fixed_bytes: int = Field(description="the batch-1 device peak less one session (weights, Mimi, context)")
    floor_ms_at_max: Optional[float] = Field(default=None, description="bandwidth roofline of a tick at that size")
    sessions_by_floor: Optional[int] = Field(default=None, description="largest size whose floor meets the deadline")
    processes_by_memory: Optional[int] = Field(default=None, description="one-call server processes that fit (each "
                                                                         "its batch-1 peak: weights, Mimi, context)")


class CapacityResult(Record):
    max_realtime_sessions: int = Field(description="sessions in lockstep (one batched process): " + LOCKSTEP_NEEDS)
    limited_by: LimitedBy
    lockstep_needs: str = LOCKSTEP_NEEDS
    judged_by: str = Field(default="", description="how the lockstep probes were judged")
    processes: Optional[ProcessCapacity] = Field(default=None, description="server processes per machine: the "
                                                                           "stock deployment figure")
    device: str = ""
    deadline_ms: float
    tick_p50_ms: Optional[float] = None
    tick_p99_ms: Optional[float] = None
    peak_memory_bytes: Optional[int] = None
    memory_bound_sessions: Optional[int] = Field(default=None, description="the planner's largest batch that fits")
    memory_per_session_bytes: Optional[int] = Field(default=None, description="measured: slope of peak memory "
                                                                               "over the probes that ran")
    predicted_memory_per_session_bytes: Optional[int] = None
    probes: list[CapacityProbe] = Field(default_factory=list)
    cost: Optional[CostLine] = None
    predicted_gpus: list[GpuSessions] = Field(default_factory=list, description="the planner, every GPU of the table")
    notes: list[str] = Field(default_factory=list)
