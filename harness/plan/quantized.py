"""Quantized weights people ask for on 12-16 GB cards, planned: bytes, fit, kernels, predicted step.

Weight-only schemes keep 16-bit activations and store each matmul weight in fewer bits with scales beside it; the
embeddings, norms and Mimi stay as they are. The facts (bytes per weight, kernel paths, from which GPU) live in
harness.contract.quantized, which the worker reads too, so that what is planned is what runs:
- int8: bitsandbytes LLM.int8 (moshi's QLinear): any CUDA GPU, fast int8 matmuls from cc 7.5.
- fp8: e4m3 weights with a float32 scale per output row; torch._scaled_mm on fp8 tensor cores (cc 8.9+), with the
  activation cast to e4m3 per tensor at each matmul (W8A8 in the kernel; weights are what is stored in 8 bits).
- w8a16: int8 weights, a 16-bit scale per row, 16-bit activations: torch._weight_int8pack_mm (cc 8.9+ is what the
  planner counts as having the kernels; older parts dequantise then matmul, which reads more than bf16).
- nf4: bitsandbytes 4-bit NormalFloat, one float32 absmax per 64 weights: its batch-1 kernel fuses dequantisation.
The worker runs all four (`quantize:` int8 | fp8 | w8a16 | nf4); on a GPU without the kernels a run is skipped with
the reason (harness.session.run_rules.quantize_skip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.contract.quantized import SCHEMES as SCHEME_FACTS
from harness.contract.quantized import cuda_support, expected_path
from harness.contract.wire import ArchitectureFacts
from harness.plan.memory import DTYPE_BYTES, LOOKUP_BLOCKS, block_bytes, kv_bytes, mimi_bytes
from harness.records.config import Quantize, RunConfig


@dataclass(frozen=True)
class Scheme:
    name: str
    weight_bytes: float  # bytes per matmul weight, scales included (a 4096-wide row)
    min_cc: float  # compute capability from which the GPU has the kernels
    extra_kernels_per_matmul: int  # kernels each matmul adds on the GPU path (activation cast, dequantise, rescale)
    runnable_here: bool  # the harness's worker runs it
    why: str


SCHEMES: tuple[Scheme, ...] = tuple(
    Scheme(f.name, f.bytes_per_weight(), f.min_cc, f.gpu_path.extra_kernels, True, f.why) for f in SCHEME_FACTS.values())
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


def scheme_weight_bytes(arch: ArchitectureFacts, run: RunConfig, name: str) -> int:
    """The LM's weights stored with scheme `name`, exactly as the worker counts them from its tensors."""
    return sum(block_bytes(b, run.model_copy(update={"quantize": Quantize(name)})) for b in arch.blocks)


def bytes_read(arch: ArchitectureFacts, run: RunConfig, per_weight: float, batch: int = 1) -> int:
    """Bytes one frame reads with quantized weights: the weights, every KV cache, Mimi."""
    return (weight_bytes(arch, run, per_weight, read_only=True) + sum(kv_bytes(k, run, batch) for k in arch.kv)
            + mimi_bytes(arch))


def matmuls_per_frame(arch: ArchitectureFacts) -> int:
    """Weight matmuls one frame runs: four per temporal layer (attention in/out, gating in/out), four per depformer
    layer and two more (input, output) per depformer step, the text head and the depformer's input."""
    depformer = next((kv.layers for kv in arch.kv if kv.name == "depformer"), 0)
    return 4 * arch.temporal_layers + (4 * depformer + 2) * arch.dep_q + 2


def quantized_kernels(arch: ArchitectureFacts, run: RunConfig) -> tuple[int, int]:
    """(kernels a frame adds, bytes a frame reads beyond the stored weights) for the path the worker runs this
    scheme with on the run's device: the extra kernels per matmul, and for a dequantise-then-matmul path the 16-bit
    copy of each weight it writes and reads."""
    path = expected_path(run.quantize.value, run.device.value)
    if run.quantize is Quantize.int8:  # bitsandbytes' matmul reads the int8 weights it stores
        return path.extra_kernels * matmuls_per_frame(arch), 0
    linear = sum(b.linear_params for b in arch.blocks if b.name not in LOOKUP_BLOCKS)
    stored = SCHEME_FACTS[run.quantize.value].bytes_per_weight(dtype_bytes=DTYPE_BYTES[run.dtype])
    return path.extra_kernels * matmuls_per_frame(arch), int(max(0.0, path.bytes_per_weight_read - stored) * linear)


def supported(s: Scheme, cc: Optional[str]) -> tuple[bool, str]:
    return cuda_support(s.name, cc)

