"""What makes two timings comparable: the machine's hardware (the key) and its software (a shown dimension).

`Machine.fingerprint` hashes torch and moshi versions too, so every package bump started a new,
empty history and silently dropped the baseline. Here the history key is the hardware alone (CPU
model, logical cores, RAM, GPU names and memory); software versions are kept beside it and shown
whenever they changed between two results ("software changed: torch 2.9.1 -> 2.10.0").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from harness.records.machine import Machine
from harness.records.schema import Session

GIB = 2**30


class Hardware(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_model: str
    cpu_cores_logical: int
    ram_gib: int
    gpus: tuple[str, ...]  # "NAME (MEMORY GiB)", in device order

    def describe(self) -> str:
        gpus = ", ".join(self.gpus) if self.gpus else "no GPU"
        return f"{self.cpu_model}, {self.cpu_cores_logical} cores, {self.ram_gib} GiB RAM, {gpus}"


def hardware_of(machine: Machine) -> Hardware:
    # RAM and GPU memory are rounded to whole GiB: the kernel's and the driver's reservations move the
    # exact byte counts a little between boots and driver versions, not the hardware.
    gpus = tuple(f"{g.name} ({round(g.memory_total_bytes / GIB)} GiB)" if g.memory_total_bytes else g.name
                 for g in sorted(machine.gpus, key=lambda g: g.index))
    return Hardware(cpu_model=machine.cpu_model.strip(), cpu_cores_logical=machine.cpu_cores_logical,
                    ram_gib=round(machine.ram_total_bytes / GIB), gpus=gpus)


def hardware_key(machine: Machine) -> str:
    """A stable 12-hex-digit hash of the hardware only: the folder name of a history."""
    return machine.hardware_key  # one definition, in the record (--resume uses it too)


def software_of(session: Session) -> dict[str, str]:
    """The software that can move a timing on fixed hardware, as recorded with the results."""
    m = session.machine
    found = {
        "harness": session.harness_version,
        "python": m.python,
        "torch": m.packages.get("torch"),
        "moshi": m.packages.get("moshi"),
        "CUDA": m.torch_cuda_build,
        "driver": m.nvidia_driver,
    }
    return {name: str(value) for name, value in found.items() if value}


def software_changes(baseline: Session, current: Session) -> list[str]:
    before, after = software_of(baseline), software_of(current)
    return [f"{name} {before.get(name, 'absent')} -> {after.get(name, 'absent')}"
            for name in dict.fromkeys([*before, *after]) if before.get(name) != after.get(name)]


def hardware_differences(baseline: Machine, current: Machine) -> list[str]:
    a, b = hardware_of(baseline), hardware_of(current)
    names = {"cpu_model": "CPU", "cpu_cores_logical": "logical cores", "ram_gib": "RAM GiB", "gpus": "GPUs"}
    out = []
    for field, label in names.items():
        x, y = getattr(a, field), getattr(b, field)
        if x != y:
            show = (lambda v: ", ".join(v) or "none") if field == "gpus" else str
            out.append(f"{label} {show(x)} -> {show(y)}")
    return out
