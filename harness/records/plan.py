"""What the planner predicts for one run, and how the measurement compared."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.records.base import Record


class MemoryItem(Record):
    name: str
    bytes: int
    where: Literal["device", "host"]


class PlanIssue(Record):
    severity: Literal["blocker", "warning"]
    what: str
    remedy: str = ""
    short: str = Field(default="", description="a few words for tables")


class StepBand(Record):
    """A predicted step time: the median and the band the model claims holds the truth about 4 times in 5."""

    p50: float
    low: float
    high: float


class StepParts(Record):
    """Where a predicted step goes (harness.plan.steptime): the parts, and the parameters that priced them."""

    mode: str = Field(description="eager | graphs | compile | compile+graphs | cpu")
    gpu_ms: float = Field(description="the executing device's time: max(bandwidth, compute) + link + kernels")
    host_ms: float = Field(description="the host's time to dispatch the frame's ops")
    bandwidth_ms: float = Field(description="bytes read per frame / achievable bandwidth")
    compute_ms: float = Field(description="FLOPs per frame / achievable throughput (0: throughput unknown)")
    link_ms: float = Field(default=0.0, description="offloaded bytes over the host link")
    kernel_ms: float = Field(description="kernels per frame x the per-kernel minimum")
    measured_ms: float = Field(
        default=0.0, description="parts timed rather than priced (a CPU's Mimi; NVIDIA's server tail: Opus, PCM copy)")
    kernels: int = Field(description="kernels the device runs per frame (counted on the real model, scaled)")
    host_ops: int = Field(description="ops the host dispatches per frame (outside CUDA graphs)")
    bytes: int
    flops: int
    eta: float = Field(description="achievable fraction of the memory bandwidth")
    kernel_us: float = Field(description="per-kernel minimum on the device")
    host_op_us: float = Field(description="host cost per dispatched op")
    host_source: str = ""
    combine: str = Field(default="", description="how the parts make the step: overlap (slower wins) or sum")


class ServingPlan(Record):
    """Sessions per GPU and cost, from the predicted step (p50) and the planned memory."""

    lockstep_sessions: int = Field(description="sessions one batching process holds under the deadline")
    processes_by_memory: int = Field(description="stock servers (one call each) whose memory fits on the GPU")
    processes_by_time: int = Field(description="... whose GPU time, time-sliced, fits in the deadline")
    server_processes: int = Field(description="the smaller of the two: stock PersonaPlex servers per GPU")
    gpu_hour_usd: Optional[float] = None
    price_source: str = ""
    usd_per_conversation_hour_processes: Optional[float] = None
    usd_per_conversation_hour_lockstep: Optional[float] = None


class RunPlan(Record):
    run: str
    device: str
    target: str
    device_peak_bytes: Optional[int] = Field(default=None, description="GPU memory including CUDA context")
    device_allocated_bytes: Optional[int] = Field(default=None, description="torch allocator peak (what "
                                                                             "max_memory_allocated reports)")
    device_capacity_bytes: Optional[int] = None
    host_peak_bytes: int
    host_capacity_bytes: Optional[int] = None
    items: list[MemoryItem]
    bytes_per_step: int = Field(description="bytes read from memory per step (weights, KV cache, Mimi)")
    offloaded_bytes_per_step: int = 0
    step_floor_ms: Optional[float] = Field(default=None, description="memory-bandwidth roofline for one step")
    issues: list[PlanIssue] = Field(default_factory=list)
    fits_memory: bool = True
    feasible: bool
    reasons: list[str] = Field(default_factory=list)
    predicted_step_ms: Optional[StepBand] = Field(default=None, description="predicted p50 with its band")
    step_parts: Optional[StepParts] = None
    predicted_realtime: Optional[str] = Field(default=None, description="yes | no | uncertain (band straddles it)")
    serving: Optional[ServingPlan] = None


class PlanCheck(Record):
    """Prediction beside measurement, for an ok run."""

    predicted_host_bytes: int
    measured_host_bytes: int
    host_error: float = Field(description="predicted / measured - 1")
    predicted_device_bytes: Optional[int] = None
    measured_device_bytes: Optional[int] = None
    device_error: Optional[float] = None
    predicted_device_total_bytes: Optional[int] = Field(default=None, description="context and allocator included")
    measured_device_total_bytes: Optional[int] = Field(default=None, description="the device's used memory as the "
                                                                                 "driver reports it")
    step_floor_ms: Optional[float] = None
    roofline_fraction: Optional[float] = Field(default=None, description="floor / measured p50: 1 is at the roofline")
    predicted_step_ms: Optional[StepBand] = None
    measured_step_p50_ms: Optional[float] = None
    step_error: Optional[float] = Field(default=None, description="predicted p50 / measured p50 - 1")
    step_in_band: Optional[bool] = None
