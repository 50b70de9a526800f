"""Host and device memory readings inside the worker."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from typing import Optional

import psutil
import torch


def current_rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident set, exact (kernel-kept), load phase included."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass(frozen=True)
class CudaMemory:
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    total_bytes: int


def cuda_memory(device: torch.device) -> Optional[CudaMemory]:
    if device.type != "cuda":
        return None
    return CudaMemory(
        peak_allocated_bytes=int(torch.cuda.max_memory_allocated(device)),
        peak_reserved_bytes=int(torch.cuda.max_memory_reserved(device)),
        total_bytes=int(torch.cuda.get_device_properties(device).total_memory),
    )
