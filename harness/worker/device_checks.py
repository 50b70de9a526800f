"""Torch-side checks of the probe, run in a worker: Triton, bitsandbytes, accelerate, bf16, bandwidth.

Each check exercises the real code path (moshi's QLinear for int8) on the device the harness would
use, so an installed-but-broken package is found here rather than mid-benchmark.
"""

from __future__ import annotations

import platform
from importlib import metadata

import torch

from harness.records.wire import ProbeCheck
from harness.worker.protocol import TorchFacts

TRITON_MIN_CC = (7, 0)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def check_triton(facts: TorchFacts) -> ProbeCheck:
    try:
        import triton  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        if not facts.cuda_available:
            return ProbeCheck(name="triton", status="n/a",
                                    finding=f"Triton not importable ({exc}); not needed without a CUDA GPU "
                                            "(torch.compile on the CPU uses the C++ backend)")
        remedy = ("torch.compile needs Triton, which is Linux-only: set `compile: off` (NO_TORCH_COMPILE=1) or run "
                  "under Linux/WSL2" if platform.system() == "Windows" else
                  "pip install triton (the version your torch pins), or set `compile: off` (NO_TORCH_COMPILE=1)")
        return ProbeCheck(name="triton", status="fail", finding=f"Triton is not importable: {exc}",
                                remedy=remedy)
    version = _version("triton")
    if not facts.cuda_available:
        return ProbeCheck(name="triton", status="n/a",
                                finding=f"Triton {version} installed; no CUDA GPU here, torch.compile on the CPU "
                                        "uses the C++ backend")
    too_old = [g for g in facts.gpus if g.compute_capability and
               tuple(int(x) for x in g.compute_capability.split(".")) < TRITON_MIN_CC]
    if too_old:
        g = too_old[0]
        return ProbeCheck(
            name="triton", status="fail",
            finding=f"Triton {version} needs compute capability >= 7.0; {g.name} is {g.compute_capability}",
            remedy="set `compile: off` for this GPU (NO_TORCH_COMPILE=1); CUDA graphs still work without compile")
    return ProbeCheck(name="triton", status="pass", finding=f"Triton {version} importable, GPU supported")


def check_bitsandbytes(facts: TorchFacts) -> ProbeCheck:
    device = "cuda" if facts.cuda_available else "cpu"
    try:
        from moshi.utils.quantize import QLinear

        layer = QLinear(torch.nn.Linear(256, 128, bias=False).to(device))
        out = layer(torch.randn(1, 4, 256, device=device))
        if not bool(torch.isfinite(out).all()):
            raise RuntimeError("int8 matmul returned non-finite values")
        if layer.weight_scb.dtype != torch.float32:
            raise RuntimeError(f"int8 scales are {layer.weight_scb.dtype}, expected float32")
    except Exception as exc:  # noqa: BLE001 - the message is the finding
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ProbeCheck(
            name="bitsandbytes", status="fail",
            finding=f"int8 through moshi's QLinear fails on {device}: {type(exc).__name__}: {first}",
            remedy="pip install 'bitsandbytes>=0.45,<0.50' (Linux); or set `quantize: none`")
    return ProbeCheck(name="bitsandbytes", status="pass",
                            finding=f"bitsandbytes {_version('bitsandbytes')}: int8 QLinear works on {device}")


def check_accelerate() -> ProbeCheck:
    try:
        from accelerate import dispatch_model  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return ProbeCheck(name="accelerate", status="fail", finding=f"accelerate not importable: {exc}",
                                remedy="pip install accelerate; or set `offload: none`")
    return ProbeCheck(name="accelerate", status="pass",
                            finding=f"accelerate {_version('accelerate')} importable (CPU offload available)")


def check_bf16(facts: TorchFacts) -> ProbeCheck:
    if facts.cuda_available:
        old = [g for g in facts.gpus if g.compute_capability and float(g.compute_capability) < 8.0]
        if old:
            return ProbeCheck(
                name="bf16", status="warn",
                finding=f"{old[0].name} (cc {old[0].compute_capability}) has no bf16 tensor cores: bf16 is emulated "
                        "or unsupported",
                remedy="use `dtype: float16` on this GPU")
        return ProbeCheck(name="bf16", status="pass", finding="bf16 supported natively by the GPU")
    capability = torch.backends.cpu.get_cpu_capability()
    flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    if native:
        return ProbeCheck(name="bf16", status="pass",
                                finding=f"CPU has native bf16 (AVX512-BF16/AMX; torch uses {capability})")
    return ProbeCheck(name="bf16", status="warn",
                            finding=f"CPU has no native bf16 instructions (torch uses {capability}): bf16 is slow",
                            remedy="prefer `dtype: float32` on this CPU")


def check_device_bandwidth(facts: TorchFacts) -> ProbeCheck:
    if not facts.cuda_available:
        return ProbeCheck(name="device_bandwidth", status="n/a", finding="no CUDA GPU on this machine")
    nbytes = 512 * 2**20
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    repeats = 10
    start.record()
    for _ in range(repeats):
        dst.copy_(src)
    end.record()
    end.synchronize()
    seconds = start.elapsed_time(end) / 1e3
    gbs = 2 * nbytes * repeats / seconds / 1e9  # a copy reads and writes
    return ProbeCheck(name="device_bandwidth", status="pass",
                            finding=f"device memory copy: {gbs:.0f} GB/s (read + write)", value=gbs)


def run_device_checks(facts: TorchFacts) -> list[ProbeCheck]:
    checks = []
    for name, check in (("triton", lambda: check_triton(facts)), ("bitsandbytes", lambda: check_bitsandbytes(facts)),
                        ("accelerate", check_accelerate), ("bf16", lambda: check_bf16(facts)),
                        ("device_bandwidth", lambda: check_device_bandwidth(facts))):
        try:
            checks.append(check())
        except Exception as exc:  # noqa: BLE001 - a crashing check is itself a finding
            checks.append(ProbeCheck(name=name, status="fail",
                                           finding=f"check crashed: {type(exc).__name__}: {exc}"))
    return checks
