"""The machine a plan is for: the scenario's `target:`, a GPU from the table, or this machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.plan.gpus import GIB, GpuSpec, find_gpu
from harness.plan.memory import HostFacts
from harness.records.machine import Machine
from harness.scenario.model import Target

DEFAULT_HOST_LINK_GBS = 25.0  # PCIe 4.0 x16, usable


@dataclass(frozen=True)
class PlanTarget:
    label: str
    gpu_name: Optional[str] = None
    vram_bytes: Optional[int] = None
    compute_capability: Optional[str] = None
    bandwidth_gbs: Optional[float] = None
    host_link_gbs: float = DEFAULT_HOST_LINK_GBS
    host_ram_bytes: Optional[int] = None
    host_bandwidth_gbs: Optional[float] = None
    os: str = "linux"
    arch_list: list[str] = field(default_factory=list)  # of the torch build that would run there
    host: HostFacts = field(default_factory=HostFacts)

    @property
    def has_gpu(self) -> bool:
        return self.gpu_name is not None


def _host_facts(machine: Optional[Machine]) -> HostFacts:
    if machine is None or machine.baseline_rss_bytes is None:
        return HostFacts()
    return HostFacts(baseline_rss_bytes=machine.baseline_rss_bytes,
                     bitsandbytes_import_bytes=machine.bitsandbytes_import_bytes or HostFacts().bitsandbytes_import_bytes)


def from_spec(spec: GpuSpec, machine: Optional[Machine], host_ram_gib: Optional[float] = None) -> PlanTarget:
    return PlanTarget(
        label=f"{spec.name} ({spec.vram_gib:g} GiB, cc {spec.compute_capability})",
        gpu_name=spec.name, vram_bytes=int(spec.vram_gib * GIB), compute_capability=spec.compute_capability,
        bandwidth_gbs=spec.bandwidth_gbs, host_link_gbs=spec.host_link_gbs,
        host_ram_bytes=int(host_ram_gib * GIB) if host_ram_gib else None,
        arch_list=machine.cuda_arch_list if machine else [], host=_host_facts(machine))


def from_scenario(target: Target, machine: Optional[Machine]) -> PlanTarget:
    spec = find_gpu(target.gpu) if target.gpu else None
    vram = target.vram_gib or (spec.vram_gib if spec else None)
    label = target.gpu or "CPU only"
    if vram:
        label += f" ({vram:g} GiB"
        cc = target.compute_capability or (spec.compute_capability if spec else None)
        label += f", cc {cc})" if cc else ")"
    if target.host_ram_gib:
        label += f", host {target.host_ram_gib:g} GiB RAM"
    return PlanTarget(
        label=label, gpu_name=target.gpu, vram_bytes=int(vram * GIB) if vram else None,
        compute_capability=target.compute_capability or (spec.compute_capability if spec else None),
        bandwidth_gbs=target.memory_bandwidth_gbs or (spec.bandwidth_gbs if spec else None),
        host_link_gbs=target.host_link_gbs or (spec.host_link_gbs if spec else DEFAULT_HOST_LINK_GBS),
        host_ram_bytes=int(target.host_ram_gib * GIB) if target.host_ram_gib else None,
        host_bandwidth_gbs=target.host_memory_bandwidth_gbs, os=target.os.value,
        arch_list=machine.cuda_arch_list if machine else [], host=_host_facts(machine))


def from_machine(machine: Machine) -> PlanTarget:
    gpu = machine.gpus[0] if machine.cuda_available and machine.gpus else None
    spec = find_gpu(gpu.name) if gpu else None
    label = f"this machine ({machine.cpu_model}, {machine.ram_total_bytes / GIB:.0f} GiB RAM"
    label += f", {gpu.name})" if gpu else ", no usable GPU)"
    device_bw = (machine.device_bandwidth_gbs / 2) if machine.device_bandwidth_gbs else None  # copy = read + write
    return PlanTarget(
        label=label, gpu_name=gpu.name if gpu else None,
        vram_bytes=(gpu.memory_free_bytes or gpu.memory_total_bytes) if gpu else None,
        compute_capability=gpu.compute_capability if gpu else None,
        bandwidth_gbs=(spec.bandwidth_gbs if spec else device_bw) if gpu else None,
        host_link_gbs=spec.host_link_gbs if spec else DEFAULT_HOST_LINK_GBS,
        host_ram_bytes=machine.ram_available_bytes or machine.ram_total_bytes,
        host_bandwidth_gbs=machine.host_bandwidth_gbs, os=machine.os.lower(),
        arch_list=machine.cuda_arch_list, host=_host_facts(machine))
