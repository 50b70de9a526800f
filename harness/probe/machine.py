"""Probe this machine: host facts in the parent, torch facts and device checks from a probe worker."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import psutil

from harness.contract.hostinfo import cpu_model
from harness.contract.wire import ArchitectureFacts, ProbeCheck, ProbeJob, ProbeReply, TorchFacts, WorkerError, to_json
from harness.knowledge import platforms
from harness.launcher.environment import probe_env
from harness.launcher.spawn import run_worker
from harness.probe import checks as c
from harness.probe import host
from harness.probe import interpret as gpu_checks
from harness.probe.nvml import read_nvml
from harness.records.machine import Machine
from harness.records.validate import parse_wire

PROBE_TIMEOUT_S = 240.0
FULL_MODEL_CPU_BYTES = 19 * 2**30  # personaplex-7b bf16 on the CPU: measured peak RSS 18.3 GiB
OFFLOAD_DISK_BYTES = 20 * 2**30


@dataclass
class ProbeResult:
    machine: Machine
    checks: list[ProbeCheck]
    architectures: dict[str, ArchitectureFacts] = field(default_factory=dict)

    @property
    def worst(self) -> str:
        return c.worst(self.checks)


def _probe_worker(work_dir: Path, presets: list[str], device_checks: bool,
                  python: Optional[str] = None, cpu_stages: bool = False, cpu_threads: int = 0) -> ProbeReply:
    """A fresh worker process reports what torch sees; a crash or hang there is reported, not raised."""
    work_dir.mkdir(parents=True, exist_ok=True)
    reply_path = work_dir / "probe.reply.json"
    reply_path.unlink(missing_ok=True)
    job_path = work_dir / "probe.job.json"
    job_path.write_text(to_json(ProbeJob(reply_path=str(reply_path), presets=presets, device_checks=device_checks,
                                       cpu_stages=cpu_stages, cpu_threads=cpu_threads)))
    outcome = run_worker(job_path, probe_env(), PROBE_TIMEOUT_S, work_dir, "probe", on_event=lambda _e: None,
                         python=python or sys.executable)
    try:
        return parse_wire(ProbeReply, reply_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        unreadable = ""
    except (OSError, ValueError) as exc:  # WireError is a ValueError: its message names the field
        unreadable = f"; its reply could not be read: {exc}"
    how = (f"timed out after {PROBE_TIMEOUT_S:.0f} s" if outcome.timed_out
           else f"exit code {outcome.exit_code}" if outcome.exit_code is not None
           else f"killed by {outcome.signal_name}")
    error = WorkerError(type="ProbeWorkerFailed", message=f"torch probe worker {how}{unreadable}",
                        traceback=outcome.stderr_tail, phase="probe")
    return ProbeReply(facts=TorchFacts(import_error=error))


def fingerprint(fields: list[str]) -> str:
    return hashlib.sha256("|".join(fields).encode()).hexdigest()[:12]


def _value(checks: list[ProbeCheck], name: str) -> Optional[float]:
    return next((check.value for check in checks if check.name == name), None)


def probe_machine(work_dir: Optional[Path] = None, presets: Optional[list[str]] = None,
                  device_checks: bool = True, disk_path: Optional[Path] = None,
                  python: Optional[str] = None, cpu_stages: bool = False, cpu_threads: int = 0) -> ProbeResult:
    """Probe this machine; with `python`, torch's side is probed in that interpreter's environment (a user's
    PersonaPlex venv, say): the harness's worker code is put on its path, it needs only torch and moshi there.
    With `cpu_stages` the worker also times the real frame's stages on the CPU (a few seconds; with `cpu_threads`
    torch threads): what the planner fits a CPU run's step time on."""
    if work_dir is None:  # a folder of our own, gone when the probe is (whatever ends it)
        with tempfile.TemporaryDirectory(prefix="harness-probe-") as temporary:
            return _probe_machine(Path(temporary), presets, device_checks, disk_path, python, cpu_stages, cpu_threads)
    return _probe_machine(work_dir, presets, device_checks, disk_path, python, cpu_stages, cpu_threads)


def _probe_machine(work_dir: Path, presets: Optional[list[str]], device_checks: bool, disk_path: Optional[Path],
                   python: Optional[str], cpu_stages: bool = False, cpu_threads: int = 0) -> ProbeResult:
    reply = _probe_worker(work_dir, presets or [], device_checks, python, cpu_stages, cpu_threads)
    facts = reply.facts
    nvml = read_nvml()
    bandwidth = c.measure_host_bandwidth()
    os_name = host.os_name()
    checks = [c.check_os(_first_cc(facts)), c.check_python(), c.check_cpu(), c.check_ram(FULL_MODEL_CPU_BYTES),
              c.check_disk(disk_path or work_dir, OFFLOAD_DISK_BYTES), c.check_host_bandwidth(bandwidth),
              c.check_cxx(), c.check_torch(facts), c.check_nvml(nvml),
              *gpu_checks.gpu_checks(facts, nvml, os_name, reply.checks)]
    if reply.error is not None:
        checks.append(ProbeCheck(name="moshi", status="fail",
                                 finding=f"building moshi models on the meta device failed: {reply.error.type}: "
                                         f"{reply.error.message}",
                                 remedy="pip install -c constraints.txt -e . (moshi 0.2.13)"))
    logical, physical = host.cores()
    packages = host.package_versions()
    python_version = platform.python_version()
    # torch and moshi as the probe worker imported them (torch.__version__ carries its build, e.g. +cu128): the
    # same strings a run's worker reports, so --resume and compare see one version, not two spellings of it
    packages = {**packages, **{k: v for k, v in (("torch", facts.torch_version), ("moshi", facts.moshi_version))
                               if v or python is not None}}
    if python is not None:  # the environment that was probed, not the harness's own
        python_version = f"{facts.python} ({facts.python_executable})" if facts.python else python
    gpus = gpu_checks.merged_gpus(facts, nvml)
    checks += platform_checks(facts.torch_version, gpus)
    reason = facts.cuda_unavailable_reason
    if facts.import_error is not None:
        reason = f"torch cannot be imported: {facts.import_error.message}"
    ram = host.ram_total_bytes()
    machine = Machine(
        hostname=host.hostname(), os=host.os_name(), os_release=platform.release(), platform=platform.platform(),
        cpu_model=cpu_model(), cpu_cores_logical=logical, cpu_cores_physical=physical, ram_total_bytes=ram,
        python=python_version, packages=packages, torch_cuda_build=facts.torch_cuda_build,
        cuda_available=facts.cuda_available, cuda_unavailable_reason="" if facts.cuda_available else reason,
        gpus=gpus, cuda_arch_list=facts.arch_list, nvidia_driver=nvml.driver or None,
        cuda_driver_version=nvml.cuda_driver_version or None,
        ram_available_bytes=int(psutil.virtual_memory().available), host_bandwidth_gbs=bandwidth,
        device_bandwidth_gbs=_value(checks, "device_bandwidth"), baseline_rss_bytes=reply.baseline_rss_bytes,
        bitsandbytes_import_bytes=reply.bitsandbytes_import_bytes,
        host_op_us=reply.host_op_us, host_op_device=reply.host_op_device, cpu_matmul_gflops=reply.cpu_matmul_gflops,
        cpu_stages=reply.cpu_stages,
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        wsl=host.wsl_facts(), gpu_memory_kind=_memory_kind(gpus),
        fingerprint=fingerprint([cpu_model(), str(logical), str(round(ram / 2**30)), host.os_name(),
                                 ",".join(g.name for g in gpus), str(packages.get("torch")),
                                 str(packages.get("moshi"))]),
    )
    return ProbeResult(machine=machine, checks=checks, architectures=reply.architectures)


def platform_checks(torch_version: Optional[str], gpus: list) -> list[ProbeCheck]:  # noqa: ANN001 - GpuInfo
    """The platform hazards a probe can see: an old torch on Hopper (NVIDIA's fork pins torch < 2.5), and
    unified memory (GB10, Jetson)."""
    checks = []
    old_torch = platforms.parse_version(torch_version)
    if old_torch and old_torch < (2, 5) and any((g.compute_capability or "").startswith("9.") for g in gpus):
        hazard = platforms.OLD_TORCH_COMPILE
        checks.append(ProbeCheck(name="old torch compile", status="warn",
                                 finding=f"torch {torch_version} on {gpus[0].name}: {hazard.what}",
                                 remedy=f"{hazard.fix} ({hazard.source})"))
    if _memory_kind(gpus) == "unified":
        hazard = platforms.UNIFIED_MEMORY
        checks.append(ProbeCheck(name="unified memory", status="warn", finding=f"{gpus[0].name}: {hazard.what}",
                                 remedy=f"{hazard.fix} ({hazard.source})"))
    return checks


def _memory_kind(gpus: list) -> Optional[str]:  # noqa: ANN001 - GpuInfo
    from harness.knowledge.gpus import find_gpu

    spec = find_gpu(gpus[0].name, gpus[0].memory_total_bytes) if gpus else None
    return spec.memory if spec else ("discrete" if gpus else None)


def _first_cc(facts) -> Optional[str]:  # noqa: ANN001 - TorchFacts
    gpus = getattr(facts, "gpus", None) or []
    return getattr(gpus[0], "compute_capability", None) if gpus else None


def host_machine() -> Machine:
    """The machine from host facts and NVML alone, without a torch worker: enough for its hardware key (what
    `harness endpoint` records, so that compare can tell two load generators apart) in a fraction of a second.
    GPUs as NVML lists them; a run's probe completes them from torch, which names them the same way."""
    nvml = read_nvml()
    logical, physical = host.cores()
    packages = host.package_versions()
    ram = host.ram_total_bytes()
    return Machine(
        hostname=host.hostname(), os=host.os_name(), os_release=platform.release(), platform=platform.platform(),
        cpu_model=cpu_model(), cpu_cores_logical=logical, cpu_cores_physical=physical, ram_total_bytes=ram,
        python=platform.python_version(), packages=packages, gpus=list(nvml.gpus),
        nvidia_driver=nvml.driver or None, cuda_driver_version=nvml.cuda_driver_version or None,
        ram_available_bytes=int(psutil.virtual_memory().available),
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        fingerprint=fingerprint([cpu_model(), str(logical), str(round(ram / 2**30)), host.os_name(),
                                 ",".join(g.name for g in nvml.gpus), str(packages.get("torch")),
                                 str(packages.get("moshi"))]))
