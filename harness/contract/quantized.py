"""Quantized LM weights: what each scheme stores, which kernels run it, from which GPU (both processes read this).

One table, read by the scenario (which dtypes a scheme allows), the session (skip a run the GPU has no kernels for),
the worker (which kernel path it runs and the bytes it stores) and the planner (memory, kernels, bytes read). Only the
LM's matmul weights are quantized (every nn.Linear of the LM, the set moshi's own int8 `quantize` replaces); Mimi,
embeddings and norms stay as they are.

Bytes per matmul weight of `numel` weights and `rows` output rows (scales included, counted from the tensors):
- int8  (bitsandbytes LLM.int8, moshi's QLinear): int8 weights + one float32 scale per row.
- fp8   (e4m3 weights, one float32 scale per row; activations cast to e4m3 per tensor at each matmul, so the
         tensor-core kernel `torch._scaled_mm` is W8A8, not weight-only): 1 byte + 4 per row.
- w8a16 (int8 weights, one scale per row in the activation dtype; 16-bit activations): 1 byte + 2 per row.
- nf4   (bitsandbytes 4-bit NormalFloat, one float32 absmax per 64 weights): 0.5 byte + 4 per 64 (the 16-entry
         code table bitsandbytes keeps per layer, 64 bytes, is not counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

FP8_MAX = 448.0  # largest finite float8_e4m3fn
NF4_BLOCK = 64  # bitsandbytes' default blocksize for 4-bit


@dataclass(frozen=True)
class KernelPath:
    """A way the worker runs one quantized matmul. `extra_kernels`: kernels per matmul beyond the one bf16 matmul
    (activation scale and cast, dequantise, row rescale), as the worker's forward launches them (a test counts them
    with the profiler). `bytes_per_weight_read`: memory traffic per weight per matmul (a dequantise-then-matmul path
    reads the quantized weight, writes and reads a 16-bit copy)."""

    name: str
    extra_kernels: int
    bytes_per_weight_read: float
    what: str


FP8_SCALED_MM = KernelPath("fp8-scaled-mm", 7, 1.0,
                           "torch._scaled_mm on e4m3 weights with the activation cast to e4m3 per tensor (W8A8), "
                           "then the per-row weight scale applied")
INT8PACK_MM = KernelPath("int8pack-mm", 0, 1.0,
                         "torch._weight_int8pack_mm: int8 weights dequantised inside the matmul (w8a16)")
DEQUANT_MM = KernelPath("dequantise-matmul", 2, 5.0,
                        "weights dequantised to the run's dtype, then a plain matmul (no fused kernel on this device)")
BNB_NF4 = KernelPath("bnb-nf4", 0, 0.5 + 4 / NF4_BLOCK,
                     "bitsandbytes Linear4bit nf4: CUDA gemv_4bit dequantises inside the kernel for one row per call "
                     "(batch 1)")
BNB_NF4_DEQUANT = KernelPath("bnb-nf4-dequantise", 2, 0.5 + 4 / NF4_BLOCK + 4.0,
                             "bitsandbytes Linear4bit nf4 without a fused kernel here (its torch fallback: "
                             "dequantise to the run's dtype, then matmul)")
BNB_INT8 = KernelPath("bnb-int8", 3, 1.0, "bitsandbytes LLM.int8 through moshi's QLinear (fp16 activations)")
KERNEL_PATHS = {p.name: p for p in (FP8_SCALED_MM, INT8PACK_MM, DEQUANT_MM, BNB_NF4, BNB_NF4_DEQUANT, BNB_INT8)}


@dataclass(frozen=True)
class SchemeFacts:
    name: str  # the scenario's `quantize:` value
    min_cc: float  # CUDA compute capability from which the GPU has the kernels the worker uses
    dtypes: tuple[str, ...]  # LM dtypes the scheme runs with (the 16-bit activations it is defined for)
    gpu_path: KernelPath  # what runs on a GPU at or above min_cc
    why: str
    needs_bitsandbytes: bool = False

    def linear_bytes(self, numel: int, rows: int, dtype_bytes: int) -> int:
        """Bytes one quantized matmul weight of `numel` weights and `rows` output rows stores, scales included."""
        if self.name in ("int8", "fp8"):
            return numel + 4 * rows
        if self.name == "w8a16":
            return numel + dtype_bytes * rows
        if self.name == "nf4":
            return (numel + 1) // 2 + 4 * -(-numel // NF4_BLOCK)
        raise ValueError(f"no byte rule for scheme {self.name}")

    def bytes_per_weight(self, in_features: int = 4096, dtype_bytes: int = 2) -> float:
        """Stored bytes per weight for a row of `in_features` weights (the planner's per-weight figure)."""
        return self.linear_bytes(in_features * 64, 64, dtype_bytes) / (in_features * 64)


SCHEMES: dict[str, SchemeFacts] = {
    "int8": SchemeFacts("int8", 7.5, ("bfloat16", "float16", "float32"), BNB_INT8,
                        "bitsandbytes LLM.int8: int8 matmul from cc 7.5 (quantise and dequantise kernels around each)",
                        needs_bitsandbytes=True),
    "fp8": SchemeFacts("fp8", 8.9, ("bfloat16", "float16"), FP8_SCALED_MM,
                       "fp8 (e4m3) tensor cores, which torch._scaled_mm needs, exist from cc 8.9 (Ada, Hopper, "
                       "Blackwell)"),
    "w8a16": SchemeFacts("w8a16", 8.9, ("bfloat16", "float16"), INT8PACK_MM,
                         "int8 weight-only kernels (torch._weight_int8pack_mm, torchao, Marlin) are built and tested "
                         "for cc 8.9+; older parts dequantise then matmul, which reads more than bf16"),
    "nf4": SchemeFacts("nf4", 6.0, ("bfloat16", "float16"), BNB_NF4,
                       "bitsandbytes 4-bit: fused batch-1 dequantising GEMV, any cc >= 6.0", needs_bitsandbytes=True),
}


def expected_path(name: str, device: str) -> KernelPath:
    """The kernel path the worker runs `name` with on `device` (cpu | cuda) with torch 2.9 and bitsandbytes 0.49:
    the planner's kernels and bytes read; the worker records the path it really took (and why, where it differs)."""
    facts = SCHEMES[name]
    if device == "cuda" or name in ("fp8", "w8a16"):
        return facts.gpu_path  # torch has CPU kernels for _scaled_mm (per-tensor) and _weight_int8pack_mm
    return BNB_NF4_DEQUANT if name == "nf4" else facts.gpu_path


def cuda_support(name: str, compute_capability: Optional[str]) -> tuple[bool, str]:
    """Whether a CUDA GPU of this compute capability has the kernels the worker runs `name` with, and why."""
    facts = SCHEMES[name]
    if compute_capability is None:
        return False, "no GPU"
    if float(compute_capability) < facts.min_cc:
        return False, f"cc {compute_capability} < {facts.min_cc:g}: {facts.why}"
    return True, facts.why
