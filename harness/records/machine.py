"""The machine: fingerprint, GPUs and probe checks."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from harness.records.base import Record

CheckStatus = Literal["pass", "warn", "fail", "n/a"]


class ProbeCheck(Record):
    name: str
    status: CheckStatus
    finding: str
    remedy: str = ""
    value: Optional[float] = None


class GpuInfo(Record):
    index: int
    name: str
    uuid: Optional[str] = None
    compute_capability: Optional[str] = None
    memory_total_bytes: Optional[int] = None
    memory_free_bytes: Optional[int] = None
    driver: Optional[str] = None


class Machine(Record):
    """Fingerprint of the host. Torch-side facts come from a probe worker, never from the parent."""

    hostname: str
    os: str
    os_release: str
    platform: str
    cpu_model: str
    cpu_cores_logical: int
    cpu_cores_physical: Optional[int]
    ram_total_bytes: int
    python: str
    packages: dict[str, Optional[str]]
    torch_cuda_build: Optional[str] = None
    cuda_available: bool = False
    cuda_unavailable_reason: str = ""
    gpus: list[GpuInfo] = Field(default_factory=list)
    cuda_arch_list: list[str] = Field(default_factory=list, description="architectures the torch build has kernels for")
    nvidia_driver: Optional[str] = None
    cuda_driver_version: Optional[str] = None
    ram_available_bytes: Optional[int] = None
    host_bandwidth_gbs: Optional[float] = Field(default=None, description="host memory copy, read + write")
    device_bandwidth_gbs: Optional[float] = Field(default=None, description="GPU memory copy, read + write")
    baseline_rss_bytes: Optional[int] = Field(
        default=None, description="a worker's RSS after importing torch/moshi/accelerate and a meta build")
    bitsandbytes_import_bytes: Optional[int] = None
    fingerprint: str = Field(description="short hash of the fields that make timings comparable")
