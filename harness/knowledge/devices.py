"""What `device: auto` becomes on a machine: the one rule, used by the session, the planner and the report.

`auto` never silently becomes another device: a machine with an NVIDIA GPU that torch cannot use gets a
diagnosed skip (the run would measure the CPU and call it the GPU), and a run resolved to the CPU says so
in its name and its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.records.config import Device, RunConfig
from harness.records.machine import Machine


@dataclass(frozen=True)
class DeviceChoice:
    run: RunConfig  # the run as it will execute (device resolved, renamed when auto became the CPU)
    skip_reason: Optional[str] = None  # set when the run must not execute here
    broken_cuda: bool = False  # the skip is a GPU torch cannot use: the session diagnoses it


def cpu_name(name: str) -> str:
    """The run's name once `auto` resolved to the CPU: the device is visible wherever the name is."""
    if name.startswith("auto-"):
        return "cpu-" + name[len("auto-"):]
    return name if name.endswith("-cpu") else f"{name}-cpu"


def resolve_device(run: RunConfig, machine: Machine) -> DeviceChoice:
    if run.device is not Device.auto:
        return DeviceChoice(run)
    if machine.cuda_available:
        return DeviceChoice(run.model_copy(update={"device": Device.cuda, "resolved_from": "auto"}))
    if machine.gpus:
        names = ", ".join(sorted({g.name for g in machine.gpus}))
        why = machine.cuda_unavailable_reason or "torch.cuda.is_available() is False"
        return DeviceChoice(run.model_copy(update={"device": Device.cuda, "resolved_from": "auto"}), broken_cuda=True,
                            skip_reason=f"device auto: this machine has {names} but torch cannot use it ({why}); "
                                        "not run on the CPU instead, which would measure something else")
    cpu_run = run.model_copy(update={"device": Device.cpu, "resolved_from": "auto", "name": cpu_name(run.name)})
    return DeviceChoice(cpu_run)
