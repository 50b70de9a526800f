"""Step time of one frame, predicted from its parts (pure functions).

GPU time = max(bytes read / achievable bandwidth, FLOPs / throughput) + offloaded bytes / host link
           + kernels x the per-kernel minimum (a small kernel never takes less, however little it reads).
Host time = ops dispatched x the host's cost per op.
Modes: eager (host and GPU overlap: the slower wins); CUDA graphs (what moshi graphs is replayed: the host pays only
for the ops outside the graphs, so the GPU's time wins); compile (moshi's torch_compile_lazy functions fused: fewer
kernels, fewer ops). A CPU run is priced by harness.plan.cpu_step (fitted on its real frame timed here).
Kernels and ops come from harness.knowledge.kernel_counts (counted on the real modules, scaled by depth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.contract.wire import ArchitectureFacts
from harness.knowledge.kernel_counts import COUNTS, FrameCounts, ScopeCounts
from harness.plan.memory import LOOKUP_BLOCKS, block_bytes, bytes_per_step, mimi_bytes
from harness.records.config import Device, RunConfig, Serving
from harness.records.plan import StepParts

GRAPH_REPLAY_OPS = 3  # a CUDAGraphed call costs the host about a few ops (copy-in, replay, bookkeeping)
# NVIDIA's server frame, after the GPU's work: Opus decode of the caller's packet and encode of the reply, the PCM's
# copy to the host and the text token's .item(). The harness's own server-frame stages on its 2-core CI host (issue
# 3's closing note, personaplex-tiny, p50): opus_decode 0.18 + opus_encode 1.46 + to_host 0.01 + text_token 0.04 =
# 1.7 ms (sphn alone, 24 kHz mono 80 ms frames: 0.23 + 0.05 ms there, so 1.7 is the CI host's upper end). Serial
# with the frame (the copy waits for the GPU), so it adds to any mode.
SERVER_TAIL_MS = 1.7


@dataclass(frozen=True)
class Params:
    """The model's free parameters (harness.plan.calibrate fits them on published figures)."""

    eta: float  # achievable fraction of the nominal memory bandwidth
    kernel_us: float  # per-kernel minimum on the GPU the figure was fitted on, at `kernel_ref_mhz`
    host_op_us: float  # host cost per dispatched op
    kernel_ref_mhz: Optional[float] = None  # that GPU's boost clock (None: no scaling by clock)

    def kernel_us_on(self, clock_mhz: Optional[float]) -> float:
        """A small kernel's time on another GPU: launch and a few waves of tiny blocks run at the SM clock, so it
        scales with the reference clock over this GPU's (an A100 at 1410 MHz pays 1.4x an H100 at 1980 MHz; an RTX
        4090 at 2520 MHz 0.8x). Unknown clock: the reference value (the band widens instead)."""
        if clock_mhz and self.kernel_ref_mhz:
            return self.kernel_us * self.kernel_ref_mhz / clock_mhz
        return self.kernel_us


@dataclass(frozen=True)
class Device_:
    """What the model needs of the executing device."""

    bandwidth_gbs: float
    link_gbs: float = 25.0
    tflops: Optional[float] = None  # dense 16-bit matmul throughput; None: not known, the compute part is left out
    clock_mhz: Optional[float] = None  # boost clock: the per-kernel time follows it


@dataclass(frozen=True)
class FrameWork:
    """What one frame asks of the machine."""

    ops: int
    kernels: int
    graphed_ops: int
    graph_calls: int
    compiled_kernels: int
    compiled_ops_saved: int  # ops a compiled run no longer dispatches
    lm_flops: int
    mimi_flops: int
    bytes_local: int
    bytes_moved: int
    server_tail_ms: float = 0.0  # NVIDIA's server frame: Opus and the host's tail after the GPU (SERVER_TAIL_MS)


def family_counts(arch: ArchitectureFacts) -> FrameCounts:
    return COUNTS["personaplex" if arch.dep_q == 16 else "moshi"]


def _depformer_layers(arch: ArchitectureFacts, counts: FrameCounts) -> int:
    return next((kv.layers for kv in arch.kv if kv.name == "depformer"), counts.depformer_layers)


def scaled(arch: ArchitectureFacts, counts: FrameCounts) -> ScopeCounts:
    """Counts of one frame of `arch`: Mimi and the LM's glue as counted, layers scaled by depth."""
    t = arch.temporal_layers / counts.temporal_layers
    d = _depformer_layers(arch, counts) / counts.depformer_layers
    fields = ScopeCounts.__dataclass_fields__
    return ScopeCounts(**{f: round(getattr(counts.mimi, f) + getattr(counts.lm_other, f)
                                   + t * getattr(counts.temporal_layer, f) + d * getattr(counts.depformer_layer, f))
                          for f in fields})


def lm_flops(arch: ArchitectureFacts, batch: int) -> int:
    """Two FLOPs per weight of every matmul, per session (embeddings are gathered, not multiplied)."""
    return 2 * batch * sum(b.linear_params for b in arch.blocks if b.name not in LOOKUP_BLOCKS)


def frame_work(arch: ArchitectureFacts, run: RunConfig, batch: int = 1, device_free: Optional[int] = None,
               *, lm_only: bool = False) -> FrameWork:
    counts = family_counts(arch)
    c = scaled(arch, counts)
    local, moved = bytes_per_step(arch, run, batch, device_free)
    mimi_ops, mimi_flops = counts.mimi, counts.mimi_flops * batch
    extra_mimi = 1 if run.serving is Serving.personaplex_server else 0  # NVIDIA's server runs a second Mimi
    if lm_only:  # a figure of the LM step alone: no Mimi at all
        local -= mimi_bytes(arch)
        c = _minus(c, mimi_ops)
        mimi_flops, extra_mimi = 0, 0
    if extra_mimi:
        c = _plus(c, mimi_ops)
        local += mimi_bytes(arch)
        mimi_flops *= 2
    return FrameWork(ops=c.ops, kernels=c.kernels, graphed_ops=c.graphed_ops, graph_calls=c.graph_calls,
                     compiled_kernels=c.compiled_kernels, compiled_ops_saved=c.kernels - c.compiled_kernels,
                     lm_flops=lm_flops(arch, batch), mimi_flops=mimi_flops, bytes_local=local, bytes_moved=moved,
                     server_tail_ms=SERVER_TAIL_MS * batch if extra_mimi else 0.0)


def _plus(a: ScopeCounts, b: ScopeCounts) -> ScopeCounts:
    return ScopeCounts(**{f: getattr(a, f) + getattr(b, f) for f in ScopeCounts.__dataclass_fields__})


def _minus(a: ScopeCounts, b: ScopeCounts) -> ScopeCounts:
    return ScopeCounts(**{f: getattr(a, f) - getattr(b, f) for f in ScopeCounts.__dataclass_fields__})


def mode_of(run: RunConfig) -> str:
    if run.device is Device.cpu:
        return "cpu"
    if run.compile:
        return "compile+graphs" if run.cuda_graphs else "compile"
    return "graphs" if run.cuda_graphs else "eager"


def step_parts(work: FrameWork, mode: str, device: Device_, params: Params, *, host_source: str = "") -> StepParts:
    """A GPU run's parts (a CPU run's: harness.plan.cpu_step)."""
    compiled = mode.startswith("compile")
    kernels = work.compiled_kernels if compiled else work.kernels
    ops = work.ops - (work.compiled_ops_saved if compiled else 0)
    flops = work.lm_flops + work.mimi_flops
    bandwidth = work.bytes_local / (params.eta * device.bandwidth_gbs * 1e9) * 1e3
    compute = flops / (device.tflops * 1e12) * 1e3 if device.tflops else 0.0
    link = work.bytes_moved / (device.link_gbs * 1e9) * 1e3
    kernel_us = params.kernel_us_on(device.clock_mhz)
    kernel = kernels * kernel_us / 1e3
    if mode.endswith("graphs") and not work.bytes_moved:  # accelerate's offload hooks keep moshi from graphing
        # The host dispatches only what runs outside the graphs (compiled or not), plus each graph's replay.
        ops = work.ops - work.graphed_ops + GRAPH_REPLAY_OPS * work.graph_calls
    host = ops * params.host_op_us / 1e3
    return StepParts(mode=mode, gpu_ms=max(bandwidth, compute) + link + kernel, host_ms=host,
                     bandwidth_ms=bandwidth, compute_ms=compute, link_ms=link, kernel_ms=kernel, kernels=kernels,
                     host_ops=ops, bytes=work.bytes_local, flops=flops, eta=params.eta, kernel_us=kernel_us,
                     host_op_us=params.host_op_us, host_source=host_source, measured_ms=work.server_tail_ms,
                     combine="overlap: the slower of host and GPU, then the server's tail")


def step_ms(parts: StepParts) -> float:
    if parts.combine.startswith("sum"):
        return parts.gpu_ms + parts.host_ms + parts.measured_ms
    return max(parts.gpu_ms, parts.host_ms) + parts.measured_ms  # the server's tail follows the frame's sync


def codebook_glue_kernels() -> float:
    """Kernels one depformer step dispatches outside the depformer's layers (its input projection, codebook
    embedding, output head, sampling): the two counted presets differ only in dep_q (16 and 8), so their glue's
    difference over 8 codebooks is exactly that, per codebook."""
    wide, narrow = COUNTS["personaplex"], COUNTS["moshi"]
    return (wide.lm_other.kernels - narrow.lm_other.kernels) / (wide.dep_q - narrow.dep_q)


def depformer_half_ms(arch: ArchitectureFacts, run: RunConfig, device: Device_, params: Params) -> float:
    """GPU time of the second half of the depformer's steps: half its weights read, half its kernels run (its
    layers' and each skipped codebook's glue)."""
    counts = family_counts(arch)
    d = _depformer_layers(arch, counts) / counts.depformer_layers
    kernels = d * counts.depformer_layer.kernels + arch.dep_q * codebook_glue_kernels()
    weights = sum(block_bytes(b, run) for b in arch.blocks
                  if (b.name.startswith("depformer") or b.name == "linears") and b.name not in LOOKUP_BLOCKS)
    return 0.5 * (weights / (params.eta * device.bandwidth_gbs * 1e9) * 1e3
                  + kernels * params.kernel_us_on(device.clock_mhz) / 1e3)
