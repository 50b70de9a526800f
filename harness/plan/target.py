"""The machine a plan is for: the scenario's `target:`, a GPU from the table, or this machine.

A target away from here is assumed to run the pinned torch (2.9.1+cu128): its architecture list
decides whether the GPU has kernels at all. Unified-memory parts (Jetson, DGX Spark) have one pool:
the GPU's and the host's capacity are the same memory, and offloaded layers are read from it at
memory speed. Here, a measured device bandwidth is used as measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.contract.wire import CpuStages
from harness.knowledge.gpus import GIB, GpuSpec, find_gpu
from harness.knowledge.wheels import PINNED_ARCHS
from harness.plan.memory import HostFacts
from harness.records.machine import Machine
from harness.records.scenario import Target

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
    memory_kind: str = "discrete"  # discrete | unified | coherent (see harness.knowledge.gpus)
    source: str = ""  # where the GPU's figures come from
    bandwidth_measured: bool = False
    laptop: bool = False
    host_op_us: Optional[float] = None  # measured here (harness plan --here); None: the host table's class
    host_op_device: Optional[str] = None  # where host_op_us was measured: cpu | cuda
    cpu_matmul_gflops: dict[str, float] = field(default_factory=dict)
    cpu_stages: Optional[CpuStages] = None  # the real frame's stages timed here (a CPU prediction's fit)
    load_average: Optional[float] = None  # when those were measured: a busy host times everything slower
    clock_mhz: Optional[float] = None  # the GPU's boost clock (the table's): the per-kernel time follows it
    wsl_release: Optional[str] = None  # WSL's release when the target is this machine under WSL (probe)

    @property
    def has_gpu(self) -> bool:
        return self.gpu_name is not None

    @property
    def unified(self) -> bool:
        return self.memory_kind == "unified"


def _host_facts(machine: Optional[Machine]) -> HostFacts:
    if machine is None or machine.baseline_rss_bytes is None:
        return HostFacts()
    return HostFacts(baseline_rss_bytes=machine.baseline_rss_bytes,
                     bitsandbytes_import_bytes=machine.bitsandbytes_import_bytes or HostFacts().bitsandbytes_import_bytes)


def _elsewhere_archs(machine: Optional[Machine]) -> list[str]:
    """The torch a target away from here would run: this machine's build, else the pinned one."""
    return list(machine.cuda_arch_list) if machine and machine.cuda_arch_list else list(PINNED_ARCHS)


def _memory_label(vram_gib: float, kind: str, cc: Optional[str], reported: str = "") -> str:
    size = reported or f"{vram_gib:g} GiB"
    what = f"{size} unified, shared by CPU and GPU" if kind == "unified" else size
    return f"{what}, cc {cc}" if cc else what


def from_spec(spec: GpuSpec, machine: Optional[Machine], host_ram_gib: Optional[float] = None) -> PlanTarget:
    ram = spec.host_ram_gib if spec.unified else (host_ram_gib or spec.host_ram_gib)
    kind = "laptop " if spec.laptop else ""
    reported = f"{spec.reported_mib} MiB as nvidia-smi reports" if spec.reported_mib else ""
    return PlanTarget(
        label=f"{spec.name} ({kind}{_memory_label(spec.vram_gib, spec.memory, spec.compute_capability, reported)})",
        gpu_name=spec.name, vram_bytes=spec.memory_bytes, compute_capability=spec.compute_capability or None,
        bandwidth_gbs=spec.bandwidth_gbs or None, host_link_gbs=spec.host_link_gbs,
        host_ram_bytes=int(ram * GIB) if ram else None,
        host_bandwidth_gbs=spec.bandwidth_gbs if spec.unified else None,
        arch_list=_elsewhere_archs(machine), host=_host_facts(machine), memory_kind=spec.memory, source=spec.source,
        laptop=spec.laptop, clock_mhz=spec.boost_mhz)


def from_scenario(target: Target, machine: Optional[Machine]) -> PlanTarget:
    vram_hint = int(target.vram_gib * GIB) if target.vram_gib else None
    spec = find_gpu(target.gpu, vram_hint) if target.gpu else None
    # The scenario's own figure wins; else the table's memory as the card reports it (MiB), not the marketing GB.
    vram = target.vram_gib or ((spec.memory_bytes / GIB) if spec else None)
    cc = target.compute_capability or (spec.compute_capability if spec else None)
    kind = spec.memory if spec else "discrete"
    label = target.gpu or "CPU only"
    reported = (f"{spec.reported_mib} MiB as nvidia-smi reports"
                if spec and spec.reported_mib and not target.vram_gib else "")
    if vram:
        label += f" ({_memory_label(vram, kind, cc, reported)})"
    ram = target.host_ram_gib or (spec.host_ram_gib if spec else None)
    if ram and kind != "unified":
        label += f", host {ram:g} GiB RAM"
    bandwidth = target.memory_bandwidth_gbs or (spec.bandwidth_gbs if spec else None)
    return PlanTarget(
        label=label, gpu_name=target.gpu, vram_bytes=int(vram * GIB) if vram else None, compute_capability=cc,
        bandwidth_gbs=bandwidth,
        host_link_gbs=target.host_link_gbs or (spec.host_link_gbs if spec else DEFAULT_HOST_LINK_GBS),
        host_ram_bytes=int(ram * GIB) if ram else None,
        host_bandwidth_gbs=target.host_memory_bandwidth_gbs or (bandwidth if kind == "unified" else None),
        os=target.os.value, arch_list=_elsewhere_archs(machine), host=_host_facts(machine), memory_kind=kind,
        source=spec.source if spec else "the scenario's target", laptop=bool(spec and spec.laptop),
        clock_mhz=spec.boost_mhz if spec else None)


def from_machine(machine: Machine) -> PlanTarget:
    gpu = machine.gpus[0] if machine.cuda_available and machine.gpus else None
    spec = find_gpu(gpu.name, gpu.memory_total_bytes) if gpu else None
    label = f"this machine ({machine.cpu_model}, {machine.ram_total_bytes / GIB:.0f} GiB RAM"
    label += f", {gpu.name})" if gpu else ", no usable GPU)"
    # the probe's device copy already counts the bytes read and written: that is the memory bandwidth
    measured = machine.device_bandwidth_gbs if gpu else None
    return PlanTarget(
        label=label, gpu_name=gpu.name if gpu else None,
        vram_bytes=(gpu.memory_free_bytes or gpu.memory_total_bytes) if gpu else None,
        compute_capability=gpu.compute_capability if gpu else None,
        bandwidth_gbs=(measured or (spec.bandwidth_gbs if spec else None)) if gpu else None,
        host_link_gbs=spec.host_link_gbs if spec else DEFAULT_HOST_LINK_GBS,
        host_ram_bytes=machine.ram_available_bytes or machine.ram_total_bytes,
        host_bandwidth_gbs=machine.host_bandwidth_gbs, os=machine.os.lower(),
        arch_list=machine.cuda_arch_list, host=_host_facts(machine), memory_kind=spec.memory if spec else "discrete",
        source="measured here" if measured else (spec.source if spec else ""), bandwidth_measured=bool(measured),
        host_op_us=machine.host_op_us, host_op_device=machine.host_op_device,
        cpu_matmul_gflops=dict(machine.cpu_matmul_gflops), cpu_stages=machine.cpu_stages,
        load_average=machine.load_average, clock_mhz=spec.boost_mhz if spec else None,
        wsl_release=(machine.wsl or {}).get("release"))
