"""Plan each quantized-weights scheme on a GPU target: memory, fit, kernels there, predicted step.

frame_work reads each scheme's stored weight bytes (plan.memory.block_bytes); the kernels and the extra bytes of the
path the worker runs on a GPU come from harness.contract.quantized."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from harness.contract.wire import ArchitectureFacts
from harness.plan.calibrate import calibration
from harness.plan.memory import GIB, device_peaks
from harness.plan.planner import plan_run, resolve_for
from harness.plan.predict import _gpu_params, realtime_verdict
from harness.plan.quantized import SCHEMES, Scheme, quantized_kernels, scheme_weight_bytes, supported
from harness.plan.steptime import Device_, frame_work, mode_of, step_ms, step_parts
from harness.plan.target import PlanTarget
from harness.records.config import Device, Offload, Quantize, RunConfig
from harness.records.plan import MemoryItem, StepBand
from harness.records.scenario import Criteria


@dataclass(frozen=True)
class QuantizedPlan:
    scheme: Scheme
    device_peak_bytes: int
    fits: bool
    kernels_ok: bool
    why: str
    step: Optional[StepBand]
    realtime: Optional[str]
    runnable: str  # "yes" | the reason it is not


def plan_quantized(arch: ArchitectureFacts, target: PlanTarget, *, frame_budget_ms: float = 80.0,
                   graphs: bool = True, deadline_ms: Optional[float] = None) -> list[QuantizedPlan]:
    """Every scheme as a bf16 run with CUDA graphs (fp16 on parts without bf16) on the whole GPU."""
    if not target.has_gpu or not target.vram_bytes:
        return []
    cc = target.compute_capability
    dtype = "bfloat16" if not cc or float(cc) >= 8.0 else "float16"
    base = resolve_for(RunConfig(name="quantized", device=Device.cuda, dtype=dtype, quantize=Quantize.none,
                                 offload=Offload.none, offload_fraction=0.5, compile=False, cuda_graphs=graphs),
                       target)
    plan = plan_run(arch, base, target)
    out = []
    for s in SCHEMES:
        run = base.model_copy(update={"quantize": Quantize(s.name)})
        lm = scheme_weight_bytes(arch, base, s.name)
        items = [MemoryItem(name=i.name, bytes=lm, where=i.where) if i.name.startswith("LM weights") else i
                 for i in plan.items]
        peak = device_peaks(items)[1]
        ok, why = supported(s, cc)
        step = realtime = None
        if target.bandwidth_gbs:
            work = frame_work(arch, run)
            extra, extra_bytes = quantized_kernels(arch, run)
            work = replace(work, bytes_local=work.bytes_local + extra_bytes, kernels=work.kernels + extra,
                           ops=work.ops + extra, graphed_ops=work.graphed_ops + extra,
                           compiled_kernels=work.compiled_kernels + extra)
            device = Device_(bandwidth_gbs=target.bandwidth_gbs, link_gbs=target.host_link_gbs,
                             clock_mhz=target.clock_mhz)
            mid, low, high, _ = _gpu_params(target)
            structure = calibration().structure
            step = StepBand(p50=step_ms(step_parts(work, mode_of(run), device, mid)),
                            low=step_ms(step_parts(work, mode_of(run), device, low)) / structure,
                            high=step_ms(step_parts(work, mode_of(run), device, high)) * structure)
            realtime = realtime_verdict(step, deadline_ms if deadline_ms is not None
                                        else Criteria().deadline_ms(frame_budget_ms))
        runnable = f"yes (quantize: {s.name}; model loop only)" if Quantize(s.name).harness_only else \
            f"yes (quantize: {s.name})"
        out.append(QuantizedPlan(scheme=s, device_peak_bytes=peak, fits=peak <= target.vram_bytes, kernels_ok=ok,
                                 why=why, step=step, realtime=realtime,
                                 runnable=runnable if ok else _not_runnable(s, why)))
    return out


def _not_runnable(s: Scheme, why: str) -> str:
    """int8 runs below cc 7.5 (bitsandbytes' slower path, a planner warning); the others are skipped there."""
    if s.name == "int8":
        return f"yes, without fast int8 kernels ({why})"
    return f"skipped: {why}"


def quantized_table(rows: list[QuantizedPlan], target: PlanTarget):  # noqa: ANN201 - a rich Table
    from rich import box
    from rich.table import Table

    table = Table(title=f"quantized weights on {target.label} (planned; bf16 activations, CUDA graphs)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("scheme", "B/weight", "GPU GiB", "fits?", "kernels here", "p50 (band)", "real time?", "runnable"):
        table.add_column(column, overflow="fold", no_wrap=column in {"p50 (band)", "B/weight", "real time?"})
    for r in rows:
        band = "-" if r.step is None else f"{r.step.p50:.1f} ({r.step.low:.0f}-{r.step.high:.0f})"
        table.add_row(r.scheme.name, f"{r.scheme.weight_bytes:.3f}", f"{r.device_peak_bytes / GIB:.1f}",
                      "[green]yes[/]" if r.fits else "[red]no[/]",
                      "[green]yes[/]" if r.kernels_ok else f"[red]no[/]: {r.why}", band, r.realtime or "-",
                      r.runnable)
    return table
