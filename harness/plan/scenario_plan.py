"""`harness plan`: describe the preset in a worker, pick the target, plan every run and the alternatives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.contract.wire import ArchitectureFacts
from harness.knowledge.gpus import find_gpu
from harness.knowledge.prices import resolve_price
from harness.plan.capacity import memory_bound
from harness.plan.planner import alternatives, plan_scenario_run, resolve_for
from harness.plan.predict import serving_prediction
from harness.plan.target import PlanTarget, from_machine, from_scenario, from_spec
from harness.plan.walltime import Costs, WallTime, predict_wall_time
from harness.probe.machine import probe_machine
from harness.records.config import Device, RunConfig
from harness.records.plan import RunPlan, ServingPlan
from harness.records.schema import ColdStart, Session
from harness.scenario.load import LoadedScenario


class ScenarioPlanError(Exception):
    pass


@dataclass
class ScenarioPlan:
    scenario: str
    preset: str
    target: PlanTarget
    architecture: ArchitectureFacts
    plans: list[RunPlan]
    alternatives: list[RunPlan] = field(default_factory=list)
    deadline_ms: float = 72.0  # the real-time rule's line: the frame budget less the criteria's headroom
    frame_budget_ms: float = 80.0  # the scenario's frame budget (the step table's unit)
    wall: Optional[WallTime] = None  # the whole scenario's predicted wall time to a verdict


def with_serving(plan: RunPlan, arch: ArchitectureFacts, run: RunConfig, target: PlanTarget, *, deadline_ms: float,
                 gpu_hour_usd: Optional[float] = None, memory_headroom: float = 0.10) -> RunPlan:
    """The plan with sessions per GPU, stock server processes and cost per conversation-hour (GPU runs)."""
    if plan.predicted_step_ms is None or plan.device != "cuda" or not plan.fits_memory:
        return plan
    resolved = resolve_for(run, target)
    price = resolve_price(target.gpu_name or "", run.capacity.gpu_hour_usd if run.capacity else None, gpu_hour_usd)
    serving = serving_prediction(arch, resolved, target, deadline_ms=deadline_ms,
                                 device_peak_bytes=plan.device_peak_bytes,
                                 memory_sessions=memory_bound(arch, resolved, target), price=price,
                                 memory_headroom=memory_headroom)
    if serving is None:
        return plan
    return plan.model_copy(update={"serving": ServingPlan(
        lockstep_sessions=serving.lockstep_sessions, processes_by_memory=serving.processes_by_memory,
        processes_by_time=serving.processes_by_time, server_processes=serving.processes,
        gpu_hour_usd=price.usd_per_hour if price else None, price_source=price.source if price else "",
        usd_per_conversation_hour_processes=serving.usd_per_conversation_hour(serving.processes),
        usd_per_conversation_hour_lockstep=serving.usd_per_conversation_hour(serving.lockstep_sessions))})


def measured_costs(target: PlanTarget, earlier: Optional[Session], where: str, scenario: str) -> tuple[Costs, str]:
    """The wall time's fixed costs for `target`: its memory bandwidths, and the cold starts (imports, load, warmup)
    an earlier run of the same scenario measured on the same hardware (the same GPU, or this CPU model without
    one); the second value says why an earlier run's were not used ("" when they were, or none was given)."""
    costs = Costs(device_gbs=target.bandwidth_gbs, host_gbs=target.host_bandwidth_gbs)
    if earlier is None:
        return costs, ""
    if earlier.scenario.name != scenario:
        return costs, f"--results {where}: scenario {earlier.scenario.name}, not {scenario}: its cold starts not used"
    gpus = [g.name.lower() for g in earlier.machine.gpus]
    same = (target.gpu_name.lower() in gpus[0] or gpus[0] in target.gpu_name.lower()) if target.gpu_name and gpus \
        else (not target.gpu_name and not gpus and earlier.machine.cpu_model in target.label)
    if not same:
        return costs, (f"--results {where}: measured on {gpus[0] if gpus else earlier.machine.cpu_model}, not the "
                       f"target ({target.label}): its cold starts not used")
    measured: dict[str, ColdStart] = {r.name: r.metrics.cold_start for r in earlier.runs
                                      if r.status == "ok" and r.metrics is not None and r.metrics.cold_start}
    return Costs(device_gbs=costs.device_gbs, host_gbs=costs.host_gbs, measured=measured, measured_in=where), ""


def plan_scenario(loaded: LoadedScenario, *, gpu: Optional[str] = None, here: bool = False,
                  host_ram_gib: Optional[float] = None, gpu_hour_usd: Optional[float] = None,
                  earlier: Optional[Session] = None, earlier_where: str = "") -> ScenarioPlan:
    scenario = loaded.scenario
    predicts_cpu_here = (here or (scenario.target is None and not gpu)) and any(
        run.device is Device.cpu for run in loaded.runs)
    probe = probe_machine(None, presets=[scenario.preset], device_checks=False,  # its temporary folder goes with it
                          cpu_stages=predicts_cpu_here, cpu_threads=scenario.torch_threads or 0)
    arch = probe.architectures.get(scenario.preset)
    if arch is None:
        raise ScenarioPlanError(f"could not describe preset {scenario.preset} (torch/moshi in a worker failed): "
                                + "; ".join(c.finding for c in probe.checks if c.status == "fail"))
    if gpu:
        spec = find_gpu(gpu)
        assert spec is not None
        ram = host_ram_gib or (scenario.target.host_ram_gib if scenario.target else None)
        target = from_spec(spec, probe.machine, ram)
    elif here or scenario.target is None:
        target = from_machine(probe.machine)
    else:
        target = from_scenario(scenario.target, probe.machine)
    deadline = scenario.criteria.deadline_ms(scenario.frame_budget_ms)
    plans = [with_serving(plan_scenario_run(arch, loaded, run, target), arch, run, target, deadline_ms=deadline,
                          gpu_hour_usd=gpu_hour_usd, memory_headroom=scenario.criteria.memory_headroom)
             for run in loaded.runs]
    return ScenarioPlan(scenario=scenario.name, preset=scenario.preset, target=target, architecture=arch,
                        plans=plans, alternatives=alternatives(arch, target, batch=scenario.batch_size,
                                                               frame_budget_ms=scenario.frame_budget_ms,
                                                               deadline_ms=deadline),
                        deadline_ms=deadline, frame_budget_ms=scenario.frame_budget_ms,
                        wall=_wall(scenario, loaded.runs, plans, target, earlier, earlier_where))


def _wall(scenario, runs: list[RunConfig], plans: list[RunPlan], target: PlanTarget,  # noqa: ANN001 - a Scenario
          earlier: Optional[Session], where: str) -> WallTime:
    costs, unused = measured_costs(target, earlier, where, scenario.name)
    wall = predict_wall_time(scenario, runs, plans, costs=costs, compute_capability=target.compute_capability)
    if unused:
        wall.notes.append(unused)
    return wall
