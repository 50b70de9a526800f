"""What goes into a worker and what comes back. Torch-free: the parent imports this module.

Channels (after pyperf): the job arrives as a JSON file; the reply is written atomically to
`reply_path`; progress events are JSON lines on an inherited pipe fd. The worker's own
stdout/stderr carry only logs and tracebacks, which the parent keeps the tail of.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.records.architecture import ArchitectureFacts
from harness.records.base import Record
from harness.records.machine import GpuInfo, ProbeCheck
from harness.records.schema import EngineInfo
from harness.records.telemetry import TelemetrySeries
from harness.scenario.model import RunConfig


class BenchJob(Record):
    kind: Literal["bench"] = "bench"
    run: RunConfig
    preset: str
    weights_path: Optional[str] = None  # None: synthetic weights
    frames: int
    warmup_frames: int
    batch_size: int
    torch_threads: Optional[int]
    seed: int
    paced_frame_ms: Optional[float] = Field(default=None, description="wait for each frame's audio like a live session")
    telemetry_hz: float = 10.0
    scratch_dir: str
    reply_path: str


class ProbeJob(Record):
    kind: Literal["probe"] = "probe"
    reply_path: str
    presets: list[str] = Field(default_factory=list, description="presets whose architecture to describe")
    device_checks: bool = Field(default=True, description="run bitsandbytes / Triton / bandwidth checks")


class WorkerError(Record):
    type: str
    message: str
    traceback: str = ""
    phase: str = ""


class FrameSamples(Record):
    """Per-frame milliseconds for the measured frames only (warmup excluded)."""

    total_ms: list[float]
    stage_ms: dict[str, list[float]]
    start_s: list[float] = Field(default_factory=list, description="start of each measured frame, telemetry clock")
    cuda_event_stage_ms: dict[str, list[float]] = Field(default_factory=dict)


class MemoryReading(Record):
    peak_rss_bytes: int
    rss_after_load_bytes: int
    cuda_peak_allocated_bytes: Optional[int] = None
    cuda_peak_reserved_bytes: Optional[int] = None
    cuda_total_bytes: Optional[int] = None


class BenchReply(Record):
    kind: Literal["bench"] = "bench"
    status: Literal["ok", "failed"]
    error: Optional[WorkerError] = None
    engine: Optional[EngineInfo] = None
    samples: Optional[FrameSamples] = None
    load_s: Optional[float] = None
    first_step_s: Optional[float] = None
    warmup_s: Optional[float] = None
    memory: Optional[MemoryReading] = None
    telemetry: Optional[TelemetrySeries] = None


class TorchFacts(Record):
    """What only an importing-torch process can tell."""

    torch_version: Optional[str] = None
    torch_cuda_build: Optional[str] = None
    cuda_available: bool = False
    cuda_unavailable_reason: str = ""
    arch_list: list[str] = Field(default_factory=list)
    gpus: list[GpuInfo] = Field(default_factory=list)
    bf16_supported: Optional[bool] = None
    import_error: Optional[WorkerError] = None


class ProbeReply(Record):
    kind: Literal["probe"] = "probe"
    facts: TorchFacts
    checks: list[ProbeCheck] = Field(default_factory=list)
    architectures: dict[str, ArchitectureFacts] = Field(default_factory=dict)
    baseline_rss_bytes: Optional[int] = Field(
        default=None, description="RSS of a worker after importing torch, moshi, accelerate and building on meta")
    bitsandbytes_import_bytes: Optional[int] = None
    error: Optional[WorkerError] = None


class ProgressEvent(Record):
    """One line on the progress pipe."""

    event: Literal["phase", "frame"]
    phase: str = ""
    index: int = 0
    total: int = 0
    warmup: bool = False
    ms: float = 0.0
