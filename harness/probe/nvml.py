"""GPUs through NVML (nvidia-ml-py), readable without torch. Absent NVML is a finding, not an error.

Besides each GPU's memory this reads the processes using it: a GPU shared with another job has
less room than its size says, and a benchmark on it measures the contention too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil

from harness.contract.wire import GpuInfo


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    used_bytes: int | None


@dataclass
class NvmlReading:
    available: bool
    reason: str = ""
    driver: str = ""
    cuda_driver_version: str = ""
    gpus: list[GpuInfo] = field(default_factory=list)
    used_bytes: dict[str, int] = field(default_factory=dict)  # by uuid
    processes: dict[str, list[GpuProcess]] = field(default_factory=dict)  # by uuid


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return "?"


def _processes(pynvml, handle) -> list[GpuProcess]:  # noqa: ANN001 - the NVML module and handle
    seen: dict[int, GpuProcess] = {}
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            running = getattr(pynvml, getter)(handle)
        except (pynvml.NVMLError, AttributeError):
            continue
        for proc in running:
            used = getattr(proc, "usedGpuMemory", None)
            seen[int(proc.pid)] = GpuProcess(int(proc.pid), _process_name(int(proc.pid)),
                                             int(used) if isinstance(used, int) else None)
    return list(seen.values())


def read_nvml() -> NvmlReading:
    try:
        import pynvml
    except ImportError:
        return NvmlReading(False, "nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return NvmlReading(False, f"NVML not available on this machine: {exc} (no NVIDIA driver loaded)")
    try:
        reading = NvmlReading(True, driver=_text(pynvml.nvmlSystemGetDriverVersion()))
        try:
            version = pynvml.nvmlSystemGetCudaDriverVersion_v2()
            reading.cuda_driver_version = f"{version // 1000}.{(version % 1000) // 10}"
        except pynvml.NVMLError:
            pass
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            reading.gpus.append(GpuInfo(
                index=index, name=_text(pynvml.nvmlDeviceGetName(handle)), uuid=uuid,
                compute_capability=f"{major}.{minor}", memory_total_bytes=int(memory.total),
                memory_free_bytes=int(memory.free), driver=reading.driver))
            reading.used_bytes[uuid] = int(memory.used)
            reading.processes[uuid] = _processes(pynvml, handle)
        return reading
    finally:
        pynvml.nvmlShutdown()


def uuid_key(uuid: str | None) -> str:
    """NVML says 'GPU-8a4d...', torch '8a4d...': compare without the prefix and the case."""
    if not uuid:
        return ""
    text = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text
