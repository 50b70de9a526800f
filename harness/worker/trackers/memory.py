"""Host and device memory readings inside the worker."""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass
from typing import Optional

import torch


def current_rss_bytes() -> int:
    """Resident set now: /proc on Linux (no psutil needed in a user's environment), psutil elsewhere."""
    try:
        pages = int(open("/proc/self/statm").read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

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
    device_used_bytes: Optional[int]  # the whole device as the driver reports it: context and other processes too


def cuda_memory(device: torch.device) -> Optional[CudaMemory]:
    if device.type != "cuda":
        return None
    return CudaMemory(
        peak_allocated_bytes=int(torch.cuda.max_memory_allocated(device)),
        peak_reserved_bytes=int(torch.cuda.max_memory_reserved(device)),
        total_bytes=int(torch.cuda.get_device_properties(device).total_memory),
        device_used_bytes=_device_used(device),
    )


def _device_used(device: torch.device) -> Optional[int]:
    try:
        free, total = torch.cuda.mem_get_info(device)
    except RuntimeError:
        return None
    return int(total - free)
