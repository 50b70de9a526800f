"""The GPU table lives in harness.knowledge.gpus (probe, plan and diagnosis share it); re-exported here."""

from harness.knowledge.gpus import GIB, GPUS, GpuSpec, custom_gpu, find_gpu, gpu_names

__all__ = ["GIB", "GPUS", "GpuSpec", "custom_gpu", "find_gpu", "gpu_names"]
