"""Torch-side probe checks, run in a worker: each one exercises the real thing on the device.

Triton compiles and runs a kernel (importing it proves nothing on a GPU its ptxas does not know),
bf16 runs a matmul, int8 runs a step of moshi's bitsandbytes QLinear. Results are raw: pass when
the thing worked, fail with the exception it raised, n/a when there is nothing to test. The parent
(harness.probe.interpret) adds what it means and the remedy, from harness.knowledge.
"""

from __future__ import annotations

import platform
from importlib import metadata

import torch

from harness.contract.wire import ProbeCheck, TorchFacts

try:  # at module level: a @triton.jit kernel resolves `tl` from this module's globals
    import triton
    import triton.language as tl
    _TRITON_ERROR = ""
except Exception as exc:  # noqa: BLE001 - any import failure is the finding
    triton = None  # type: ignore[assignment]
    _TRITON_ERROR = f"{type(exc).__name__}: {exc}"

if triton is not None:
    @triton.jit
    def _add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):  # noqa: ANN001, N803 - Triton's style
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask),
                 mask=mask)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:400]


def check_triton(facts: TorchFacts) -> ProbeCheck:
    if triton is None:
        status = "fail" if facts.cuda_available else "n/a"
        return ProbeCheck(name="triton", status=status, finding=f"Triton is not importable ({_TRITON_ERROR})")
    version = _version("triton")
    if not facts.cuda_available:
        return ProbeCheck(name="triton", status="n/a", finding=f"Triton {version} installed; no CUDA GPU to run a "
                                                               "kernel on (torch.compile on the CPU uses C++)")
    results = []
    for gpu in facts.gpus:
        try:
            n = 4096
            x = torch.arange(n, device=f"cuda:{gpu.index}", dtype=torch.float32)
            out = torch.empty_like(x)
            with torch.cuda.device(gpu.index):
                _add_kernel[(triton.cdiv(n, 1024),)](x, x, out, n, BLOCK=1024)
            torch.cuda.synchronize(gpu.index)
            if not torch.equal(out, 2 * x):
                raise RuntimeError("the kernel ran but returned wrong values")
        except Exception as exc:  # noqa: BLE001 - the message is the finding
            return ProbeCheck(name="triton", status="fail",
                              finding=f"Triton {version} could not compile and run a kernel on {gpu.name} "
                                      f"(cc {gpu.compute_capability}): {_first_line(exc)}")
        results.append(gpu.name)
    return ProbeCheck(name="triton", status="pass",
                      finding=f"Triton {version} compiled and ran a kernel on {', '.join(results)}")


def check_bf16(facts: TorchFacts) -> ProbeCheck:
    if not facts.cuda_available:
        flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
        native = "avx512_bf16" in flags or "amx_bf16" in flags
        capability = torch.backends.cpu.get_cpu_capability()
        return ProbeCheck(name="bf16", status="pass" if native else "warn", value=1.0 if native else 0.0,
                          finding=f"CPU {'has' if native else 'has no'} native bf16 instructions (torch uses "
                                  f"{capability})")
    for gpu in facts.gpus:
        try:
            a = torch.randn(256, 256, device=f"cuda:{gpu.index}")
            exact = a @ a
            low = (a.bfloat16() @ a.bfloat16()).float()
            torch.cuda.synchronize(gpu.index)
            error = float((low - exact).abs().max() / exact.abs().max())
            if not error < 0.05:
                raise RuntimeError(f"bf16 matmul is off by {error:.3f} of the float32 result")
        except Exception as exc:  # noqa: BLE001
            return ProbeCheck(name="bf16", status="fail",
                              finding=f"a bf16 matmul failed on {gpu.name} (cc {gpu.compute_capability}): "
                                      f"{_first_line(exc)}")
    return ProbeCheck(name="bf16", status="pass",
                      finding=f"a bf16 matmul ran on {', '.join(g.name for g in facts.gpus)} "
                              f"(torch.cuda.is_bf16_supported: {facts.bf16_supported})")


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
        return ProbeCheck(name="bitsandbytes", status="fail",
                          finding=f"int8 through moshi's QLinear fails on {device}: {_first_line(exc)}")
    return ProbeCheck(name="bitsandbytes", status="pass",
                      finding=f"bitsandbytes {_version('bitsandbytes')}: a QLinear int8 step ran on {device}")


def check_accelerate() -> ProbeCheck:
    try:
        from accelerate import dispatch_model  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return ProbeCheck(name="accelerate", status="fail", finding=f"accelerate not importable: {_first_line(exc)}")
    return ProbeCheck(name="accelerate", status="pass",
                      finding=f"accelerate {_version('accelerate')} importable (CPU offload available)")


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
    gbs = 2 * nbytes * repeats / seconds / 1e9  # a copy reads and writes: this is the memory bandwidth
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
            checks.append(ProbeCheck(name=name, status="fail", finding=f"check crashed: {_first_line(exc)}"))
    return checks
