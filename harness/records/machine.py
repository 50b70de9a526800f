"""The machine: fingerprint, GPUs and probe checks."""

from __future__ import annotations

import hashlib
from typing import Optional

from pydantic import Field

from harness.contract.wire import CpuStages, GpuInfo
from harness.records.base import Record


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
    host_op_us: Optional[float] = Field(default=None, description="eager PyTorch: host cost per dispatched op, "
                                                                  "measured by the probe worker")
    host_op_device: Optional[str] = Field(default=None, description="cpu or cuda: where host_op_us was measured")
    cpu_matmul_gflops: dict[str, float] = Field(default_factory=dict, description="this CPU's matmul GFLOP/s per dtype")
    cpu_stages: Optional[CpuStages] = Field(default=None, description="the real frame's stages timed on this CPU "
                                                                      "(what a CPU step prediction is fitted on)")
    load_average: Optional[float] = Field(default=None, description="1-minute load average when probed: a busy host "
                                                                    "measures slower than the planner predicts")
    wsl: Optional[dict[str, Optional[str]]] = Field(
        default=None, description="WSL as Linux sees it: wsl (WSL1/WSL2), kernel (/proc/version), distro "
                                  "(WSL_DISTRO_NAME), interop (WSLInterop), release (wsl.exe --version); None: not WSL")
    gpu_memory_kind: Optional[str] = Field(
        default=None, description="discrete | unified (one pool with the CPU: GB10, Jetson) | coherent (Grace)")
    fingerprint: str = Field(description="short hash of the fields that make timings comparable")

    @property
    def hardware_key(self) -> str:
        """The machine's hardware alone (CPU, cores, RAM, GPUs): stable across torch / moshi / driver updates."""
        return hashlib.sha256("|".join(self.hardware_parts()).encode()).hexdigest()[:12]

    def hardware_parts(self) -> list[str]:
        # RAM and GPU memory rounded to whole GiB: the kernel's and the driver's reservations move the exact
        # byte counts a little between boots and driver versions, not the hardware.
        gpus = [f"{g.name} ({round(g.memory_total_bytes / 2**30)} GiB)" if g.memory_total_bytes else g.name
                for g in sorted(self.gpus, key=lambda g: g.index)]
        return [self.cpu_model.strip(), str(self.cpu_cores_logical), str(round(self.ram_total_bytes / 2**30)), *gpus]
