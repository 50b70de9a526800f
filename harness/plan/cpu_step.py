"""A CPU run's step time, fitted on the real frame timed on this CPU (pure functions).

On a CPU one thread dispatches and computes, so the parts add up; but the parts a GPU model prices from small loops
are far off here: moshi's streaming convolutions in Mimi and its Python around every LM op cost several times a
bare op. So the probe times the real frame of a scaled preset of the other family (`CpuStages`: Mimi encode +
decode, and the LM step) and the model is:

    step = Mimi (timed here: the same module in every preset; twice for NVIDIA's server frame, which runs a second)
         + LM ops x (this host's cost per real LM op: the timed LM step over the ops it dispatched)
         + max(LM bytes / this host's memory bandwidth, LM FLOPs / this CPU's matmul rate for the dtype)
         + offloaded bytes over the link.

The last term is what grows with a larger preset (a 7B LM streams 16 GB per frame); the timed preset's own
arithmetic is small and stays folded into the cost per op. torch.compile on a CPU is priced as eager: inductor's
fused kernels save the GPU's launches, which a CPU does not pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.contract.presets import PRESETS
from harness.contract.wire import ArchitectureFacts, CpuStages
from harness.knowledge.kernel_counts import COUNTS
from harness.plan.memory import mimi_bytes
from harness.plan.steptime import FrameWork
from harness.records.config import RunConfig, Serving
from harness.records.plan import StepParts

# The band around the fitted step: how far a CPU frame strays from the timed one (frame-to-frame spread, the
# scheduler moving torch's threads, a cache-sized preset against a streamed one). Checked against cpu-smoke runs
# (`harness plan --calibration` does not cover CPUs: the fit is per host).
CPU_BAND = (0.85, 1.35)


@dataclass(frozen=True)
class CpuFit:
    """This host's CPU, fitted: Mimi's time and the cost of one real LM op."""

    stages: CpuStages
    lm_op_us: float
    lm_ops: int  # ops the timed preset's LM step dispatched (harness.knowledge.kernel_counts)

    @property
    def source(self) -> str:
        return (f"timed here: {self.stages.preset} frame on {self.stages.threads} thread(s), Mimi "
                f"{self.stages.mimi_ms:.1f} ms, LM {self.stages.lm_ms:.1f} ms over {self.lm_ops} ops = "
                f"{self.lm_op_us:.2f} us per LM op")


def lm_ops_of_timed(preset: str) -> Optional[int]:
    """Ops the LM step of a counted preset dispatches: the counts were taken on that very preset."""
    family = PRESETS[preset].family if preset in PRESETS else None
    counts = COUNTS.get(family or "")
    if counts is None or counts.preset != preset:
        return None
    return counts.lm_other.ops + counts.temporal_layer.ops + counts.depformer_layer.ops


def fit_cpu(stages: Optional[CpuStages]) -> Optional[CpuFit]:
    if stages is None or stages.lm_ms <= 0:
        return None
    ops = lm_ops_of_timed(stages.preset)
    if not ops:
        return None
    return CpuFit(stages=stages, lm_op_us=stages.lm_ms / ops * 1e3, lm_ops=ops)


def mimi_passes(run: RunConfig) -> int:
    return 2 if run.serving is Serving.personaplex_server else 1  # NVIDIA's server frame runs a second Mimi


def cpu_step_parts(work: FrameWork, arch: ArchitectureFacts, run: RunConfig, fit: CpuFit, *, bandwidth_gbs: float,
                   matmul_gflops: dict[str, float], scale: float = 1.0) -> StepParts:
    """The step's parts at `scale` (1: the fit; the band's ends scale the host's rates)."""
    passes = mimi_passes(run)
    counts_mimi_ops = COUNTS["personaplex" if arch.dep_q == 16 else "moshi"].mimi.ops
    lm_ops = work.ops - passes * counts_mimi_ops
    lm_bytes = max(work.bytes_local - passes * mimi_bytes(arch), 0)
    rate = matmul_gflops.get(run.dtype.value) or matmul_gflops.get("float32")
    bandwidth = lm_bytes / (bandwidth_gbs * 1e9) * 1e3
    compute = work.lm_flops / (rate * 1e9) * 1e3 if rate else 0.0
    link = work.bytes_moved / (bandwidth_gbs * 1e9) * 1e3
    mimi = fit.stages.mimi_ms * passes
    host = lm_ops * fit.lm_op_us / 1e3
    return StepParts(mode="cpu", gpu_ms=(max(bandwidth, compute) + link) * scale, host_ms=host * scale,
                     bandwidth_ms=bandwidth * scale, compute_ms=compute * scale, link_ms=link * scale,
                     kernel_ms=0.0, measured_ms=mimi * scale, kernels=work.kernels, host_ops=lm_ops,
                     bytes=work.bytes_local, flops=work.lm_flops + work.mimi_flops, eta=1.0, kernel_us=0.0,
                     host_op_us=fit.lm_op_us, host_source=fit.source,
                     combine="sum: one thread dispatches and computes; Mimi timed here")
