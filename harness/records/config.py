"""A run's configuration as results record it: the bottom of the layering (scenario builds these)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from harness.records.capacity import CapacitySpec


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


class DType(str, Enum):
    bfloat16 = "bfloat16"
    float16 = "float16"
    float32 = "float32"

    @property
    def short(self) -> str:
        return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[self.value]


class Quantize(str, Enum):
    none = "none"
    int8 = "int8"


class Offload(str, Enum):
    none = "none"
    cpu = "cpu"  # the harness's tuned offload: the last `offload_fraction` of the temporal layers
    auto = "auto"  # PersonaPlex's --cpu-offload: accelerate's automatic device map from the GPU's free memory


def environment_label(python: str) -> str:
    """A short name for an interpreter: its virtual environment's folder (…/venv-torch24/bin/python -> venv-torch24)."""
    parts = [p for p in python.replace("\\", "/").split("/") if p]
    if len(parts) >= 3 and parts[-2] in ("bin", "Scripts"):
        return parts[-3]
    return parts[-1] if parts else python


class Serving(str, Enum):
    model = "model"  # moshi's inference core: Mimi encode -> LMGen.step -> Mimi decode
    personaplex_server = "personaplex-server"  # what NVIDIA PersonaPlex's server does per frame, extras timed


class RunConfig(BaseModel):
    """A fully resolved run: what one worker process executes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    device: Device
    dtype: DType
    quantize: Quantize
    offload: Offload
    offload_fraction: float
    compile: bool
    cuda_graphs: bool
    timeout_s: Optional[float] = None
    serving: Annotated[Serving, BeforeValidator(lambda v: Serving.model if v is None else v)] = Serving.model
    python: Optional[str] = None  # the interpreter of the worker's environment; None: the harness's own
    resolved_from: Optional[str] = None  # "auto" when the session chose the device; the report says so
    batch_size: Optional[int] = Field(default=None, ge=1, le=256)  # sessions in lockstep; None: the scenario's
    capacity: Optional[CapacitySpec] = None  # search the largest real-time batch instead of one measurement

    def describe(self) -> str:
        parts = [self.device.value, self.dtype.value]
        if self.quantize is Quantize.int8:
            parts.append("int8")
        if self.offload is Offload.cpu:
            parts.append(f"offload {self.offload_fraction:.0%} of layers")
        parts.append("compile" if self.compile else "eager")
        parts.append("CUDA graphs" if self.cuda_graphs else "no CUDA graphs")
        parts.append("PersonaPlex server frame" if self.serving is Serving.personaplex_server else "moshi core")
        if self.python:
            parts.append(f"environment {environment_label(self.python)}")
        if self.batch_size and self.batch_size > 1:
            parts.append(f"{self.batch_size} sessions in lockstep")
        if self.capacity is not None:
            procs = "" if self.capacity.processes == "off" else (
                f" and {self.capacity.max_processes or self.capacity.max_sessions} server processes")
            parts.append(f"capacity search up to {self.capacity.max_sessions} sessions in lockstep{procs}")
        return ", ".join(parts)
