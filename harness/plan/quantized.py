"""Quantized weights people ask for on 12-16 GB cards, planned: bytes, fit, kernels, predicted step.

Weight-only schemes keep 16-bit activations and store each matmul weight in fewer bits with scales beside it; the
embeddings, norms and Mimi stay as they are. What a GPU needs to run them fast:
- int8: bitsandbytes LLM.int8 (the harness's `quantize: int8`): any CUDA GPU, fast int8 matmuls from cc 7.5.
- fp8 weight-only: e4m3 weights with a scale per output row, upcast in the matmul; fp8 tensor cores from cc 8.9.
- w8a16: int8 weights, 16-bit activations (torchao int8 weight-only, Marlin-style kernels): cc 8.9 and newer, the
  kernels these libraries ship and test (older parts fall back to dequantise-then-matmul, which reads more).
- nf4: bitsandbytes 4-bit NormalFloat, one absmax per 64 weights: its batch-1 kernel fuses dequantisation.
The worker does not run fp8, w8a16 or nf4 yet: these rows are planned, and say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.contract.wire import ArchitectureFacts
from harness.plan.memory import DTYPE_BYTES, LOOKUP_BLOCKS, kv_bytes, mimi_bytes
from harness.records.config import RunConfig


@dataclass(frozen=True)
class Scheme:
    name: str
    weight_bytes: float  # bytes per matmul weight, scales included
    min_cc: float  # compute capability from which the GPU has the kernels
    extra_kernels_per_matmul: int  # kernels each matmul adds (activation cast, dequantise)
    runnable_here: bool  # the harness's worker can run it
    why: str


SCHEMES: tuple[Scheme, ...] = (
    Scheme("int8", 1.0, 7.5, 2, True, "bitsandbytes LLM.int8: int8 matmul from cc 7.5 (quantise and dequantise "
                                      "kernels around each)"),
    Scheme("fp8-weight-only", 1.0, 8.9, 1, False, "fp8 (e4m3) tensor cores exist from cc 8.9 (Ada, Hopper, "
                                                  "Blackwell)"),
    Scheme("w8a16", 1.0, 8.9, 0, False, "int8 weight-only GEMV kernels (torchao, Marlin) are built and tested for "
                                        "cc 8.9+"),
    Scheme("nf4", 0.5 + 4 / 64, 6.0, 0, False, "bitsandbytes 4-bit: fused batch-1 dequantising GEMV, any cc >= 6.0"),
)
INT4_GROUP64 = 0.5 + 4 / 64  # 4-bit weights with a 16-bit scale and bias per 64 (MLX's default), bytes per weight


def scheme(name: str) -> Scheme:
    return next(s for s in SCHEMES if s.name == name)


def weight_bytes(arch: ArchitectureFacts, run: RunConfig, per_weight: float, *, read_only: bool = False) -> int:
    """LM weights with every matmul weight at `per_weight` bytes; the rest in the run's dtype (float32 norms)."""
    size = DTYPE_BYTES[run.dtype]
    total = 0.0
    for block in arch.blocks:
        if read_only and block.name in LOOKUP_BLOCKS:
            continue
        other = block.params - block.linear_params - block.float32_params
        total += block.linear_params * per_weight + other * size + 4 * block.float32_params
    return int(total)


def bytes_read(arch: ArchitectureFacts, run: RunConfig, per_weight: float, batch: int = 1) -> int:
    """Bytes one frame reads with quantized weights: the weights, every KV cache, Mimi."""
    return (weight_bytes(arch, run, per_weight, read_only=True) + sum(kv_bytes(k, run, batch) for k in arch.kv)
            + mimi_bytes(arch))


def matmuls_per_frame(arch: ArchitectureFacts) -> int:
    """Weight matmuls one frame runs: four per temporal layer (attention in/out, gating in/out), four per depformer
    layer and two more (input, output) per depformer step, the text head and the depformer's input."""
    depformer = next((kv.layers for kv in arch.kv if kv.name == "depformer"), 0)
    return 4 * arch.temporal_layers + (4 * depformer + 2) * arch.dep_q + 2


def supported(s: Scheme, cc: Optional[str]) -> tuple[bool, str]:
    if cc is None:
        return False, "no GPU"
    if float(cc) < s.min_cc:
        return False, f"cc {cc} < {s.min_cc:g}: {s.why}"
    return True, s.why
