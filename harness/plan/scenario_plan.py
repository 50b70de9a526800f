"""`harness plan`: describe the preset in a worker, pick the target, plan every run and the alternatives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.contract.wire import ArchitectureFacts
from harness.knowledge.gpus import find_gpu
from harness.plan.planner import alternatives, plan_scenario_run
from harness.plan.target import PlanTarget, from_machine, from_scenario, from_spec
from harness.probe.machine import probe_machine
from harness.records.plan import RunPlan
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


def plan_scenario(loaded: LoadedScenario, *, gpu: Optional[str] = None, here: bool = False,
                  host_ram_gib: Optional[float] = None) -> ScenarioPlan:
    scenario = loaded.scenario
    probe = probe_machine(None, presets=[scenario.preset], device_checks=False)  # its temporary folder goes with it
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
    plans = [plan_scenario_run(arch, loaded, run, target) for run in loaded.runs]
    return ScenarioPlan(scenario=scenario.name, preset=scenario.preset, target=target, architecture=arch,
                        plans=plans, alternatives=alternatives(arch, target, batch=scenario.batch_size,
                                                               frame_budget_ms=scenario.frame_budget_ms))
