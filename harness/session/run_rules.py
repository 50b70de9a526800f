"""What a run is, before it runs: how many frames, how long it may take, whether it runs here, and the record the
worker receives. Pure rules over the scenario, the run and the machine; the runner applies them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from harness.contract.quantized import SCHEMES, cuda_support
from harness.contract.wire import WorkerRun
from harness.knowledge.devices import cpu_name, resolve_auto
from harness.records.config import Device, RunConfig
from harness.records.plan import RunPlan
from harness.records.schema import Machine
from harness.verdict.screen import frames_to_measure  # noqa: F401 - the rule lives with the screen; named here too


@dataclass(frozen=True)
class Skip:
    """Why a run does not execute here. `forceable`: only the planner's prediction stands in the way, which
    `--force` overrides; a missing device cannot be forced."""

    reason: str
    forceable: bool = False


def default_timeout_s(frames: int, frame_budget_ms: float) -> float:
    """900 s, or (the default length is long: 4590 frames) 600 s for loading, warmup and prefill plus twice the
    audio measured, which a real-time run needs at most; a run that cannot be real time stops early anyway."""
    return max(900.0, 600.0 + 2.0 * frames * frame_budget_ms / 1000.0)


def skip_reason(run: RunConfig, machine: Machine, plan: Optional[RunPlan]) -> Optional[Skip]:
    if run.device is Device.cuda and not machine.cuda_available:
        return Skip(f"CUDA is not available on this machine: {machine.cuda_unavailable_reason or 'no CUDA device'}")
    if run.cuda_graphs and run.device is Device.cpu:
        return Skip("CUDA graphs need a CUDA device; this run is on the CPU (set cuda_graphs: off to run it here)")
    quantized = quantize_skip(run, machine)
    if quantized is not None:
        return quantized
    if plan is not None and not plan.feasible:
        return Skip("predicted not to work here: " + "; ".join(plan.reasons) + " (--force runs it anyway)",
                    forceable=True)
    return None


def quantize_skip(run: RunConfig, machine: Machine) -> Optional[Skip]:
    """fp8, w8a16 and nf4 where this machine lacks their kernels (harness.contract.quantized says which GPUs have
    them). The CPU runs all three (torch's CPU _scaled_mm and _weight_int8pack_mm, bitsandbytes' CPU fallback)."""
    if not run.quantize.harness_only:
        return None
    facts = SCHEMES[run.quantize.value]
    if facts.needs_bitsandbytes and run.python is None and not machine.packages.get("bitsandbytes"):
        return Skip(f"quantize: {run.quantize.value} needs bitsandbytes, which this environment lacks "
                    "(pip install 'bitsandbytes>=0.45,<0.50')")
    if run.device is Device.cuda and machine.gpus:
        ok, why = cuda_support(run.quantize.value, machine.gpus[0].compute_capability)
        if not ok:
            return Skip(f"quantize: {run.quantize.value} has no kernels on {machine.gpus[0].name}: {why}")
    return None


def worker_run(run: RunConfig) -> WorkerRun:
    """The fields the worker's record has, taken from the run by name (enums as their values)."""
    values = run.model_dump(mode="json")
    return WorkerRun(**{f.name: values[f.name] for f in dataclasses.fields(WorkerRun)})


def resolve_devices(runs: list[RunConfig], machine: Optional[Machine]) -> list[tuple[RunConfig, Optional[str]]]:
    """Every run with `device: auto` resolved; names stay unique afterwards (they name log files, `--resume`
    and `compare` entries): an `auto` run renamed for the CPU that meets a run of that name becomes
    `<name>-auto` (then `-auto2`, ...)."""
    resolved = [resolve_device(run, machine) for run in runs]
    taken = {run.name for run, _ in resolved if run.resolved_from is None}
    out = []
    for run, skip in resolved:
        if run.resolved_from is not None:
            name, n = run.name, 1
            while name in taken:
                n += 1
                name = f"{run.name}-auto" + (str(n - 1) if n > 2 else "")
            taken.add(name)
            run = run.model_copy(update={"name": name}) if name != run.name else run
        out.append((run, skip))
    return out


def resolve_device(run: RunConfig, machine: Optional[Machine]) -> tuple[RunConfig, Optional[str]]:
    """`device: auto` resolved by the one rule; a run that went to the CPU is renamed so that it says so."""
    if run.device is not Device.auto or machine is None:
        return run, None
    m = machine
    choice = resolve_auto(m.cuda_available, [g.name for g in m.gpus], m.cuda_unavailable_reason)
    update: dict = {"device": Device(choice.device), "resolved_from": "auto"}
    if choice.device == "cpu":
        update["name"] = cpu_name(run.name)
    return run.model_copy(update=update), choice.skip_reason
