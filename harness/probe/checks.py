"""Host-side probe checks (OS, Python, CPU, RAM, disk, compilers, torch import, NVML), each with a remedy.

What the GPU-side facts mean is judged in harness.probe.interpret.
"""

from __future__ import annotations

import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import psutil

from harness.contract.hostinfo import cpu_model
from harness.contract.wire import ProbeCheck, TorchFacts
from harness.knowledge.platforms import wsl_hazards
from harness.probe import host
from harness.probe.nvml import NvmlReading

GIB = 2**30


def measure_host_bandwidth(megabytes: int = 256, repeats: int = 4) -> float:
    """GB/s of a large memory copy (counting the read and the write), best of `repeats`."""
    src = np.ones(megabytes * 2**20, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def check_os(cc: Optional[str] = None, wsl: Optional[dict] = None) -> ProbeCheck:
    name = host.os_name()
    if name == "Linux":
        return ProbeCheck(name="os", status="pass", finding=f"Linux {platform.release()}")
    if name == "WSL":
        facts = wsl if wsl is not None else (host.wsl_facts() or {})
        release = facts.get("release")
        hazards = wsl_hazards(release, cc)
        finding = (f"{facts.get('wsl', 'WSL')} (kernel {platform.release()}, distro {facts.get('distro') or '?'}, "
                   f"WSL release {release or 'unknown: wsl.exe not reachable'}): "
                   + "; ".join(h.what for h in hazards))
        return ProbeCheck(name="os", status="warn", finding=finding,
                          remedy=" | ".join(f"{h.fix} ({h.source})" for h in hazards))
    if name == "Windows":
        return ProbeCheck(name="os", status="warn", finding="Windows: Triton (torch.compile) is Linux-only",
                          remedy="set `compile: off` (NO_TORCH_COMPILE=1) or run under WSL2/Linux")
    return ProbeCheck(name="os", status="warn", finding=f"{name}: no CUDA; only CPU runs are possible",
                      remedy="use a Linux machine with an NVIDIA GPU for real-time PersonaPlex")


def check_python() -> ProbeCheck:
    version = platform.python_version()
    if (3, 10) <= sys.version_info[:2] <= (3, 12):
        return ProbeCheck(name="python", status="pass", finding=f"Python {version} (moshi 0.2.13 needs 3.10+)")
    return ProbeCheck(name="python", status="fail", finding=f"Python {version} is outside 3.10-3.12",
                      remedy="create the environment with Python 3.10, 3.11 or 3.12 (HARNESS_PYTHON=python3.11)")


def check_cpu() -> ProbeCheck:
    logical, physical = host.cores()
    return ProbeCheck(name="cpu", status="pass", value=float(logical),
                      finding=f"{cpu_model()}: {logical} logical cores ({physical or '?'} physical)")


def check_ram(needed_bytes: Optional[int] = None) -> ProbeCheck:
    memory = psutil.virtual_memory()
    finding = f"{memory.total / GIB:.1f} GiB total, {memory.available / GIB:.1f} GiB available"
    if needed_bytes and memory.available < needed_bytes:
        return ProbeCheck(name="ram", status="warn", value=memory.available / GIB,
                          finding=f"{finding}; personaplex-7b bf16 on the CPU needs about {needed_bytes / GIB:.0f} GiB",
                          remedy="use a GPU, int8, or a machine with more RAM for CPU runs of the full model")
    return ProbeCheck(name="ram", status="pass", finding=finding, value=memory.available / GIB)


def check_disk(path: Path, needed_bytes: int) -> ProbeCheck:
    usage = shutil.disk_usage(path)
    finding = f"{usage.free / GIB:.1f} GiB free under {path} (offloaded weights and results go there)"
    if usage.free < needed_bytes:
        return ProbeCheck(name="disk", status="warn", finding=finding, value=usage.free / GIB,
                          remedy=f"free {needed_bytes / GIB:.0f} GiB there, or pass --out on a larger disk")
    return ProbeCheck(name="disk", status="pass", finding=finding, value=usage.free / GIB)


def check_host_bandwidth(gbs: float) -> ProbeCheck:
    return ProbeCheck(name="host_bandwidth", status="pass", value=gbs,
                      finding=f"host memory copy: {gbs:.1f} GB/s (read + write); bounds CPU and offload step time")


def check_cxx() -> ProbeCheck:
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler:
        return ProbeCheck(name="cxx_compiler", status="pass", finding=f"{compiler}: torch.compile's CPU backend works")
    return ProbeCheck(name="cxx_compiler", status="warn",
                      finding="no C++ compiler: torch.compile cannot build CPU kernels, nor Triton its GPU launcher",
                      remedy="apt-get install -y gcc g++ (or set `compile: off`)")


def check_torch(facts: TorchFacts) -> ProbeCheck:
    if facts.import_error is not None:
        return ProbeCheck(name="torch", status="fail",
                          finding=f"torch cannot be imported: {facts.import_error.type}: {facts.import_error.message}",
                          remedy="pip install -c constraints.txt -e . (torch 2.9.1, moshi 0.2.13)")
    build = f"CUDA {facts.torch_cuda_build}" if facts.torch_cuda_build else "CPU-only"
    return ProbeCheck(name="torch", status="pass", finding=f"torch {facts.torch_version} ({build} build)")


def check_nvml(nvml: NvmlReading) -> ProbeCheck:
    if not nvml.available:
        return ProbeCheck(name="nvml", status="n/a", finding=nvml.reason)
    names = ", ".join(f"{g.name} ({(g.memory_total_bytes or 0) / GIB:.0f} GiB, cc {g.compute_capability})"
                      for g in nvml.gpus) or "no GPU"
    return ProbeCheck(name="nvml", status="pass",
                      finding=f"driver {nvml.driver} (CUDA {nvml.cuda_driver_version or '?'}): {names}")


def worst(checks: list[ProbeCheck]) -> str:
    order = {"n/a": 0, "pass": 0, "warn": 1, "fail": 2}
    return max(checks, key=lambda c: order[c.status]).status if checks else "pass"
