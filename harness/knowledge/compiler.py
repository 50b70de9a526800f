"""What torch.compile (Triton/inductor), bf16 and bitsandbytes int8 need, by OS and compute capability.

Sources: Triton's supported hardware (https://github.com/triton-lang/triton#compatibility: NVIDIA
compute capability 7.0+, Linux), torch's inductor check (torch/_inductor/scheduler.py raises "Found
... which is too old to be supported by the triton GPU compiler" below 7.0), `torch.cuda.is_bf16_supported`
(native bf16 from compute capability 8.0; Ampere), and bitsandbytes' int8 matmul (fast igemmlt from 7.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.knowledge.wheels import parse_cc

TRITON_MIN_CC = (7, 0)
BF16_NATIVE_CC = (8, 0)
INT8_FAST_CC = (7, 5)
COMPILE_OFF = "set `compile: off` (NO_TORCH_COMPILE=1; for moshi's server export NO_TORCH_COMPILE=1)"


@dataclass(frozen=True)
class Support:
    ok: bool
    why: str = ""
    remedy: str = ""


def compile_support(os_name: str, compute_capability: Optional[str]) -> Support:
    """Can torch.compile (inductor + Triton) build CUDA kernels for this GPU on this OS?"""
    os_name = os_name.lower()
    if os_name.startswith("win"):
        return Support(False, "torch.compile's CUDA backend needs Triton, which is Linux-only (no official Windows release)",
                       f"{COMPILE_OFF}, or run under WSL2/Linux (the unofficial triton-windows wheels are "
                       "untested here)")
    if os_name in {"darwin", "macos"}:
        return Support(False, "no CUDA (and no Triton) on macOS", "use a Linux machine with an NVIDIA GPU")
    if compute_capability and parse_cc(compute_capability) < TRITON_MIN_CC:
        return Support(False, f"Triton needs compute capability >= 7.0; this GPU is {compute_capability}",
                       f"{COMPILE_OFF} on this GPU; CUDA graphs still work without compile")
    return Support(True, "Triton supports this GPU and OS")


def bf16_support(compute_capability: Optional[str]) -> Support:
    if not compute_capability:
        return Support(True, "unknown GPU")
    if parse_cc(compute_capability) >= BF16_NATIVE_CC:
        return Support(True, f"bf16 is native from compute capability 8.0 ({compute_capability})")
    return Support(False, f"compute capability {compute_capability} has no bf16 tensor cores: bf16 is emulated "
                          "(slow) or refused (cuBLAS NOT_SUPPORTED, ptxas '.bf16 requires sm_80')",
                   "use `dtype: float16` on this GPU (moshi: load the bf16 checkpoint and run it in float16)")


def int8_support(compute_capability: Optional[str]) -> Support:
    if not compute_capability or parse_cc(compute_capability) >= INT8_FAST_CC:
        return Support(True, "bitsandbytes has fast int8 matmul kernels here")
    return Support(False, f"bitsandbytes int8 has no fast kernel below compute capability 7.5 "
                          f"({compute_capability}): it dequantises to fp16", "expect int8 to save memory, not time")
