"""Capacity records: how many lockstep sessions one worker holds in real time, and what a conversation-hour costs.

A session is one conversation; sessions in lockstep are one batched worker run (batch B = B sessions), so a
tick (one batched frame) that misses the deadline is late for every session in it.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.records.base import Record

ProbeVerdict = Literal["realtime", "late", "memory", "failed"]
# time_limit: `harness run --time-limit` stopped the search before a size failed (the result is a lower bound)
LimitedBy = Literal["time", "memory", "max_sessions", "failed", "time_limit"]


class JoinSpec(Record):
    """A session joining a running batch: per-slot reset of the last slot, then its warm-up (persona prefill)."""

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


class Admission(Record):
    """What admitting one caller cost: the ticks during its join, as every session in the batch saw them."""

    slot: int
    at_tick: int = Field(description="measured tick index of the reset")
    warmup_steps: int
    reset_ms: float = Field(description="per-slot reset of the streaming state (Mimi and LM)")
    tick_ms: list[float] = Field(description="the ticks during the join (reset included in the first)")
    late_ticks: int = 0
    how: str = Field(default="per-slot reset + warm-up steps", description="what the join ran (a persona prefill "
                                                                          "replaces the warm-up when there is one)")


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
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class CostLine(Record):
    gpu_hour_usd: float
    price_source: str
    sessions: int
    per_conversation_hour_usd: Optional[float] = Field(default=None, description="GPU-hour price / sessions")
    energy_j_per_audio_s: Optional[float] = Field(default=None, description="whole device, from NVML")
    energy_wh_per_conversation_hour: Optional[float] = None
    energy_note: str = ""


class GpuSessions(Record):
    """The planner's prediction for one GPU of the table: sessions that fit by memory (predicted, not measured)."""

    gpu: str
    vram_bytes: int
    sessions_by_memory: int
    per_session_bytes: int
    fixed_bytes: int = Field(description="the batch-1 device peak less one session (weights, Mimi, context)")
    floor_ms_at_max: Optional[float] = Field(default=None, description="bandwidth roofline of a tick at that size")
    sessions_by_floor: Optional[int] = Field(default=None, description="largest size whose floor meets the deadline")


class CapacityResult(Record):
    max_realtime_sessions: int
    limited_by: LimitedBy
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
