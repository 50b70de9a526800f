"""A run's configuration as results record it: the bottom of the layering (scenario builds these)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from harness.contract.quantized import SCHEMES
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
    """The LM's matmul weights (harness.contract.quantized has each scheme's facts: bytes, kernels, GPUs)."""

    none = "none"
    int8 = "int8"  # bitsandbytes LLM.int8 through moshi's QLinear (moshi's own `quantize`)
    fp8 = "fp8"  # e4m3 weights + row scales, torch._scaled_mm (activations cast to e4m3: W8A8)
    w8a16 = "w8a16"  # int8 weights + row scales, 16-bit activations (torch._weight_int8pack_mm)
    nf4 = "nf4"  # bitsandbytes 4-bit NormalFloat (Linear4bit)

    @property
    def harness_only(self) -> bool:
        """No shipped server loads these weights: only the harness's model loop runs them."""
        return self in (Quantize.fp8, Quantize.w8a16, Quantize.nf4)

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The LM dtypes the scheme runs with."""
        return SCHEMES[self.value].dtypes if self is not Quantize.none else tuple(d.value for d in DType)


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
    """What one measured frame does. A server frame is what the software that would deploy the configuration does
    per 80 ms; `model` is the bare core, measured only when asked (it is no deployment)."""

    model = "model"  # moshi's inference core: Mimi encode -> LMGen.step -> Mimi decode
    personaplex_server = "personaplex-server"  # NVIDIA PersonaPlex's server: + a second Mimi, Opus, host copies
    moshi_server = "moshi-server"  # PyPI moshi 0.2.13's `python -m moshi.server`: + Opus and host copies

    @property
    def label(self) -> str:
        return {"model": "moshi core (no server)", "personaplex-server": "PersonaPlex server frame",
                "moshi-server": "moshi server frame"}[self.value]


def servers_that_load(dtype: DType, quantize: Quantize, offload: Offload) -> list[Serving]:
    """The shipped servers that load this configuration as measured. NVIDIA's (github NVIDIA/personaplex): bf16
    only, no int8, its own `--cpu-offload` (offload: auto). PyPI moshi 0.2.13's: bf16, or fp16 with `--half`, int8
    through `quantize` in the model's config.json, no offload. Nothing ships the harness's tuned offload or fp32,
    nor fp8, w8a16 or nf4 weights (the harness's own layers: none). The one table of this fact: scenario defaults and
    the verdict's recommendation both read it."""
    servers: list[Serving] = []
    if quantize.harness_only:
        return servers
    if dtype is DType.bfloat16 and quantize is Quantize.none and offload in (Offload.none, Offload.auto):
        servers.append(Serving.personaplex_server)
    if dtype in (DType.bfloat16, DType.float16) and offload is Offload.none:
        servers.append(Serving.moshi_server)
    return servers


def deploying_serving(family: str, dtype: DType, quantize: Quantize, offload: Offload) -> Serving:
    """The frame a run measures unless it asks for another: the server that would deploy it. NVIDIA's server for
    what it loads of a PersonaPlex preset, moshi's server otherwise (also for what no server loads as it is, fp32 or
    the tuned offload: moshi's frame is the nearest a deployment would run). fp8, w8a16 and nf4 weights no server
    loads at all: their frame is the model loop (moshi's core), and the report says no server ran it."""
    if quantize.harness_only:
        return Serving.model
    servers = servers_that_load(dtype, quantize, offload)
    if family == "personaplex" and Serving.personaplex_server in servers:
        return Serving.personaplex_server
    return Serving.moshi_server


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
        if self.quantize is not Quantize.none:
            parts.append(self.quantize.value)
        if self.offload is Offload.cpu:
            parts.append(f"offload {self.offload_fraction:.0%} of layers")
        parts.append("compile" if self.compile else "eager")
        parts.append("CUDA graphs" if self.cuda_graphs else "no CUDA graphs")
        parts.append(self.serving.label)
        if self.python:
            parts.append(f"environment {environment_label(self.python)}")
        if self.batch_size and self.batch_size > 1:
            parts.append(f"{self.batch_size} sessions in lockstep")
        if self.capacity is not None:
            procs = "" if self.capacity.processes == "off" else (
                f" and {self.capacity.max_processes or self.capacity.max_sessions} server processes")
            parts.append(f"capacity search up to {self.capacity.max_sessions} sessions in lockstep{procs}")
        return ", ".join(parts)
