"""GPUs through NVML (nvidia-ml-py), readable without torch. Absent NVML is a finding, not an error."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.records.machine import GpuInfo


@dataclass
class NvmlReading:
    available: bool
    reason: str = ""
    driver: str = ""
    cuda_driver_version: str = ""
    gpus: list[GpuInfo] = field(default_factory=list)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
            reading.gpus.append(GpuInfo(
                index=index,
                name=_text(pynvml.nvmlDeviceGetName(handle)),
                uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                compute_capability=f"{major}.{minor}",
                memory_total_bytes=int(memory.total),
                memory_free_bytes=int(memory.free),
                driver=reading.driver,
            ))
        return reading
    finally:
        pynvml.nvmlShutdown()
