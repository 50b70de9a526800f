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
