"""A run's predicted step time on a target, with its band; sessions, server processes and cost from it.

The GPU side uses the calibrated parameters (harness.plan.calibrate) and the host's cost per op: measured here by
the probe worker (`harness plan --here`), else the host table's class for that GPU (harness.knowledge.hosts).
The CPU side is fitted on the real frame timed on this CPU by the probe (harness.plan.cpu_step): only this host
can be predicted for a CPU run (an unmeasured CPU has no timing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from harness.contract.quantized import BNB_INT8
from harness.contract.wire import ArchitectureFacts
from harness.knowledge.hosts import HOSTS, host_kind
from harness.knowledge.prices import Price
from harness.plan.calibrate import ETA_RANGE, KERNEL_RANGE, calibration
from harness.plan.cpu_step import CPU_BAND, cpu_step_parts, fit_cpu
from harness.plan.quantized import matmuls_per_frame, quantized_kernels
from harness.plan.steptime import Device_, FrameWork, Params, frame_work, mode_of, step_ms, step_parts
from harness.plan.target import PlanTarget
from harness.records.config import Device, Quantize, RunConfig
from harness.records.plan import StepBand, StepParts
from harness.records.scenario import Criteria

CPU_HOST_RANGE = (0.9, 1.6)  # a GPU host's cost per op measured here by the probe's small loop: a floor
INT8_OPS_PER_MATMUL = BNB_INT8.extra_kernels  # bitsandbytes' int8: quantise the activation, int8 matmul, dequantise


@dataclass(frozen=True)
class StepPrediction:
    band: StepBand
    parts: StepParts
    realtime: str  # yes | no | uncertain


def _int8(work: FrameWork, arch: ArchitectureFacts) -> FrameWork:
    extra = INT8_OPS_PER_MATMUL * matmuls_per_frame(arch)
    return replace(work, ops=work.ops + extra, kernels=work.kernels + extra, graphed_ops=work.graphed_ops + extra,
                   compiled_kernels=work.compiled_kernels + extra)


def _gpu_params(target: PlanTarget) -> tuple[Params, Params, Params, str]:
    cal = calibration()
    if target.host_op_us and target.host_op_device == "cuda":
        host, low, high = target.host_op_us, target.host_op_us * CPU_HOST_RANGE[0], target.host_op_us * CPU_HOST_RANGE[1]
        source = f"measured here: {target.host_op_us:.1f} us per op on this host's GPU"
    else:
        cls = HOSTS[host_kind(target.gpu_name or "", target.memory_kind, target.laptop)]
        base = cal.params.host_op_us
        host, low, high = base * cls.relative, base * cls.low, base * cls.high
        source = f"{cls.kind} host: {host:.1f} us per op ({cls.source})"
    p = cal.params
    ref = p.kernel_ref_mhz
    return (Params(p.eta, p.kernel_us, host, ref), Params(ETA_RANGE[1], p.kernel_us * KERNEL_RANGE[0], low, ref),
            Params(ETA_RANGE[0], p.kernel_us * KERNEL_RANGE[1], high, ref), source)


DEFAULT_DEADLINE_MS = Criteria().deadline_ms(80.0)  # 72 ms: the default budget less the default headroom


def realtime_verdict(band: StepBand, deadline_ms: float) -> str:
    """THE real-time rule of a prediction, the same one the verdict applies to a measurement: p99 within the
    deadline (the frame budget less the criteria's headroom). A prediction has no p99 of its own: the band is an
    ~80% range for the step's p50 across hosts and clocks, and a steady frame's p99 sits within a few percent of
    its p50 (CUDA graphs replay the same work every frame), so the predicted p99 is the band's high end. "yes": even
    that is within the deadline; "no": even the band's low end misses it; else "uncertain" (measure it)."""
    if band.high <= deadline_ms:
        return "yes"
    if band.low > deadline_ms:
        return "no"
    return "uncertain"


def predict_step(arch: ArchitectureFacts, run: RunConfig, target: PlanTarget, *, batch: int = 1,
                 deadline_ms: float = DEFAULT_DEADLINE_MS,
                 device_free: Optional[int] = None) -> Optional[StepPrediction]:
    """None when the target lacks what the model needs (a GPU's bandwidth; for a CPU run, this host measured)."""
    work = frame_work(arch, run, batch, device_free)
    if run.quantize is Quantize.int8:
        work = _int8(work, arch)
    elif run.quantize.harness_only:  # fp8, w8a16, nf4: the kernels and bytes of the path the worker runs
        kernels, extra_bytes = quantized_kernels(arch, run)
        work = replace(work, ops=work.ops + kernels, kernels=work.kernels + kernels,
                       graphed_ops=work.graphed_ops + kernels, compiled_kernels=work.compiled_kernels + kernels,
                       bytes_local=work.bytes_local + extra_bytes)
    mode = mode_of(run)
    if run.device is Device.cuda:
        if not target.has_gpu or not target.bandwidth_gbs:
            return None
        device = Device_(bandwidth_gbs=target.bandwidth_gbs, link_gbs=target.host_link_gbs,
                         clock_mhz=target.clock_mhz)
        mid, low, high, source = _gpu_params(target)
        parts = [step_parts(work, mode, device, p, host_source=source) for p in (mid, low, high)]
        structure = calibration().structure
    else:
        fit = fit_cpu(target.cpu_stages)
        if fit is None or not target.host_bandwidth_gbs:
            return None
        parts = [cpu_step_parts(work, arch, run, fit, bandwidth_gbs=target.host_bandwidth_gbs,
                                matmul_gflops=target.cpu_matmul_gflops, scale=scale)
                 for scale in (1.0, *CPU_BAND)]
        structure = 1.0
    band = StepBand(p50=step_ms(parts[0]), low=step_ms(parts[1]) / structure, high=step_ms(parts[2]) * structure)
    return StepPrediction(band=band, parts=parts[0], realtime=realtime_verdict(band, deadline_ms))


@dataclass(frozen=True)
class ServingPrediction:
    lockstep_sessions: int  # one batching process, B sessions per tick under the deadline
    processes_by_memory: int  # stock servers (one call each) whose memory fits on the GPU
    processes_by_time: int  # ... whose GPU time, shared by time slicing, fits in the deadline
    price: Optional[Price]

    @property
    def processes(self) -> int:
        return min(self.processes_by_memory, self.processes_by_time)

    def usd_per_conversation_hour(self, sessions: int) -> Optional[float]:
        return self.price.usd_per_hour / sessions if self.price and sessions else None


def processes_by_memory(capacity_bytes: int, process_bytes: int, memory_headroom: float) -> int:
    """Stock server processes (each its own weights and context) in the memory less the criteria's headroom: the
    rule a measured capacity run applies (harness.session.processes), so plan and run agree."""
    return int(capacity_bytes * (1 - memory_headroom) // process_bytes) if process_bytes else 0


def serving_prediction(arch: ArchitectureFacts, run: RunConfig, target: PlanTarget, *, deadline_ms: float,
                       device_peak_bytes: Optional[int], memory_sessions: int, price: Optional[Price],
                       memory_headroom: float = Criteria().memory_headroom) -> Optional[ServingPrediction]:
    """Lockstep sessions and stock processes, each judged by the one rule (realtime_verdict: "yes" only)."""
    one = predict_step(arch, run, target, deadline_ms=deadline_ms)
    if one is None or run.device is not Device.cuda or not target.vram_bytes or not device_peak_bytes:
        return None
    by_memory = processes_by_memory(target.vram_bytes, device_peak_bytes, memory_headroom)
    # K processes share the GPU by time slicing: K x (one frame's GPU time at the band's high end) within the deadline
    gpu_high = one.band.high * one.parts.gpu_ms / one.band.p50 if one.band.p50 else float("inf")
    by_time = int(deadline_ms // gpu_high) if one.realtime == "yes" else 0

    def fits(batch: int) -> bool:
        step = predict_step(arch, run, target, batch=batch, deadline_ms=deadline_ms)
        return step is not None and step.realtime == "yes"

    low, high = 0, max(memory_sessions, 0)
    while low < high:  # the largest batch (memory allowing) whose predicted p50 meets the deadline
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return ServingPrediction(lockstep_sessions=low, processes_by_memory=int(by_memory),
                             processes_by_time=by_time, price=price)
