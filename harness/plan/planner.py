"""Plan every run of a scenario for a target: memory, software fit, roofline, feasibility, alternatives."""

from __future__ import annotations

from typing import Optional

from harness.contract.wire import ArchitectureFacts
from harness.plan.memory import CUDA_CONTEXT, GIB, bytes_per_step, device_peaks, host_peak, predict_items
from harness.plan.predict import predict_step
from harness.plan.software import software_issues
from harness.plan.target import PlanTarget
from harness.records.config import Device, DType, Offload, Quantize, RunConfig
from harness.records.plan import PlanCheck, PlanIssue, RunPlan
from harness.records.scenario import Criteria
from harness.records.schema import RunMetrics
from harness.scenario.load import LoadedScenario

DEVICE_FILL_LIMIT = 1.0  # a plan "fits" when the predicted peak is within capacity; the verdict asks for headroom


def resolve_for(run: RunConfig, target: PlanTarget) -> RunConfig:
    if run.device is not Device.auto:
        return run
    return run.model_copy(update={"device": Device.cuda if target.has_gpu else Device.cpu})


def plan_run(arch: ArchitectureFacts, run: RunConfig, target: PlanTarget, *, batch: int = 1,
             frame_budget_ms: float = 80.0, checkpoint_bytes: int = 0,
             host_memory_limit_bytes: Optional[int] = None, deadline_ms: Optional[float] = None) -> RunPlan:
    """`deadline_ms`: the frame budget less the criteria's headroom (the real-time rule's line); default: the
    default criteria's on this budget."""
    deadline = deadline_ms if deadline_ms is not None else Criteria().deadline_ms(frame_budget_ms)
    run = resolve_for(run, target)
    on_gpu = run.device is Device.cuda
    # What accelerate sees as free on an idle card: the memory less the CUDA context (offload: auto).
    device_free = target.vram_bytes - CUDA_CONTEXT if on_gpu and target.vram_bytes else None
    items = predict_items(arch, run, batch, target.host, checkpoint_bytes, device_free)
    allocated, device_total = device_peaks(items)
    host = host_peak(items)
    issues = software_issues(run, target)
    local, moved = bytes_per_step(arch, run, batch, device_free)

    floor_ms: Optional[float] = None
    bandwidth = target.bandwidth_gbs if on_gpu else target.host_bandwidth_gbs
    if bandwidth:
        link = target.host_link_gbs if on_gpu else bandwidth  # disk tier on a CPU host reads the page cache
        floor_ms = (local / (bandwidth * 1e9) + (moved / (link * 1e9) if moved else 0.0)) * 1e3
        if floor_ms > frame_budget_ms:
            issues.append(PlanIssue(
                severity="warning",
                what=f"cannot be real time: reading {(local + moved) / 1e9:.1f} GB per step takes at least "
                     f"{floor_ms:.0f} ms, over the {frame_budget_ms:g} ms budget",
                remedy="less offload, int8, or a GPU with more memory bandwidth" if on_gpu
                else "run on a GPU",
                short=f"not real time: floor {floor_ms:.0f} ms"))

    if run.offload is Offload.auto and on_gpu and target.vram_bytes and device_total > target.vram_bytes:
        weights = next((i.bytes for i in items if i.name.startswith("LM weights")), 0)
        issues.append(PlanIssue(
            severity="warning",
            what=f"PersonaPlex's --cpu-offload (accelerate's automatic map) fills the GPU with {weights / GIB:.1f} GiB "
                 "of weights and leaves the KV cache, Mimi and activations no room: out of memory, as users report "
                 "on 16 GB cards",
            remedy="the harness's tuned offload (offload: cpu, offload_fraction 0.5) or int8 leaves that room",
            short="auto map leaves no room"))
    reasons = [i.what for i in issues if i.severity == "blocker"]
    memory_reasons = []
    capacity = target.vram_bytes if on_gpu else None
    if on_gpu and capacity and device_total > capacity * DEVICE_FILL_LIMIT:
        memory_reasons.append(f"needs {device_total / GIB:.1f} GiB of GPU memory, {target.gpu_name} has "
                              f"{capacity / GIB:.1f} GiB")
    host_capacity = target.host_ram_bytes
    if host_memory_limit_bytes:
        host_capacity = min(host_capacity or host_memory_limit_bytes, host_memory_limit_bytes)
    if host_capacity and host > host_capacity:
        memory_reasons.append(f"needs {host / GIB:.1f} GiB of host RAM, {host_capacity / GIB:.1f} GiB available")
    reasons = memory_reasons + reasons
    step = predict_step(arch, run, target, batch=batch, deadline_ms=deadline, device_free=device_free)
    return RunPlan(
        run=run.name, device=run.device.value, target=target.label,
        device_peak_bytes=device_total if on_gpu else None, device_allocated_bytes=allocated if on_gpu else None,
        device_capacity_bytes=capacity, host_peak_bytes=host, host_capacity_bytes=host_capacity, items=items,
        bytes_per_step=local + moved, offloaded_bytes_per_step=moved, step_floor_ms=floor_ms, issues=issues,
        fits_memory=not memory_reasons, feasible=not reasons, reasons=reasons,
        predicted_step_ms=step.band if step else None, step_parts=step.parts if step else None,
        predicted_realtime=step.realtime if step else None,
    )


def plan_scenario_run(arch: ArchitectureFacts, loaded: LoadedScenario, run: RunConfig,
                      target: PlanTarget) -> RunPlan:
    """plan_run with the scenario's batch, budget, checkpoint size and memory cap."""
    scenario = loaded.scenario
    return plan_run(arch, run, target, batch=run.batch_size or scenario.batch_size, frame_budget_ms=scenario.frame_budget_ms,
                    checkpoint_bytes=loaded.checkpoint_bytes, host_memory_limit_bytes=scenario.host_memory_limit_bytes,
                    deadline_ms=scenario.criteria.deadline_ms(scenario.frame_budget_ms))


def alternatives(arch: ArchitectureFacts, target: PlanTarget, *, batch: int = 1,
                 frame_budget_ms: float = 80.0, deadline_ms: Optional[float] = None) -> list[RunPlan]:
    """Configurations worth trying on this target, feasible ones first, fastest floor first."""
    device = Device.cuda if target.has_gpu else Device.cpu
    dtype = DType.bfloat16 if not target.compute_capability or float(target.compute_capability) >= 8.0 else DType.float16
    compile_ok = device is Device.cuda and target.os != "windows" and (
        not target.compute_capability or float(target.compute_capability) >= 7.0)
    candidates = [(dtype, Quantize.none, Offload.none, 0.5), (dtype, Quantize.int8, Offload.none, 0.5)]
    if device is Device.cuda:
        candidates += [(dtype, Quantize.none, Offload.cpu, f) for f in (0.25, 0.5, 0.75)]
        candidates += [(dtype, Quantize.int8, Offload.cpu, 0.25)]
    plans = []
    for dt, quant, offload, fraction in candidates:
        name = "-".join([device.value, dt.short] + (["int8"] if quant is Quantize.int8 else [])
                        + ([f"offload{int(fraction * 100)}"] if offload is Offload.cpu else []))
        run = RunConfig(name=name, device=device, dtype=dt, quantize=quant, offload=offload, offload_fraction=fraction,
                        compile=compile_ok, cuda_graphs=device is Device.cuda and offload is Offload.none)
        plans.append(plan_run(arch, run, target, batch=batch, frame_budget_ms=frame_budget_ms, deadline_ms=deadline_ms))
    return sorted(plans, key=lambda p: (not p.feasible, not p.fits_memory, p.step_floor_ms or float("inf")))


def compare(plan: RunPlan, metrics: RunMetrics) -> PlanCheck:
    measured_device = metrics.cuda.peak_allocated_bytes if metrics.cuda else None
    band, measured = plan.predicted_step_ms, metrics.ms_per_step.p50
    predicted_device = plan.device_allocated_bytes
    return PlanCheck(
        predicted_host_bytes=plan.host_peak_bytes,
        measured_host_bytes=metrics.peak_rss_bytes,
        host_error=plan.host_peak_bytes / metrics.peak_rss_bytes - 1,
        predicted_device_bytes=predicted_device,
        measured_device_bytes=measured_device,
        device_error=(predicted_device / measured_device - 1) if predicted_device and measured_device else None,
        predicted_device_total_bytes=plan.device_peak_bytes if metrics.cuda else None,
        measured_device_total_bytes=metrics.cuda.device_used_bytes if metrics.cuda else None,
        step_floor_ms=plan.step_floor_ms,
        roofline_fraction=(plan.step_floor_ms / metrics.ms_per_step.p50) if plan.step_floor_ms else None,
        predicted_step_ms=band, measured_step_p50_ms=measured,
        step_error=(band.p50 / measured - 1) if band and measured else None,
        step_in_band=(band.low <= measured <= band.high) if band and measured else None,
    )
