"""Build the Machine fingerprint: host facts in the parent, torch facts from a probe worker."""

from __future__ import annotations

import hashlib
import platform
import tempfile
from pathlib import Path

from harness.launcher.environment import probe_env
from harness.launcher.spawn import run_worker
from harness.probe import host
from harness.probe.nvml import read_nvml
from harness.records.schema import Machine
from harness.worker.protocol import ProbeJob, ProbeReply, TorchFacts, WorkerError

PROBE_TIMEOUT_S = 180.0


def probe_torch(work_dir: Path) -> TorchFacts:
    """Ask a fresh worker process what torch sees; a crash or hang there is reported, not raised."""
    work_dir.mkdir(parents=True, exist_ok=True)
    reply_path = work_dir / "probe.reply.json"
    job_path = work_dir / "probe.job.json"
    job_path.write_text(ProbeJob(reply_path=str(reply_path)).model_dump_json())
    outcome = run_worker(job_path, probe_env(), PROBE_TIMEOUT_S, work_dir, "probe", on_event=lambda _e: None)
    try:
        return ProbeReply.model_validate_json(reply_path.read_text()).facts
    except (OSError, ValueError):
        how = (f"timed out after {PROBE_TIMEOUT_S:.0f} s" if outcome.timed_out
               else f"exit code {outcome.exit_code}" if outcome.exit_code is not None
               else f"killed by {outcome.signal_name}")
        return TorchFacts(import_error=WorkerError(type="ProbeWorkerFailed", message=f"torch probe worker {how}",
                                                   traceback=outcome.stderr_tail, phase="probe"))


def fingerprint(fields: list[str]) -> str:
    return hashlib.sha256("|".join(fields).encode()).hexdigest()[:12]


def probe_machine(work_dir: Path | None = None) -> Machine:
    if work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix="harness-probe-"))
    facts = probe_torch(work_dir)
    nvml = read_nvml()
    logical, physical = host.cores()
    packages = host.package_versions()
    gpus = nvml.gpus or facts.gpus
    reason = facts.cuda_unavailable_reason
    if facts.import_error is not None:
        reason = f"torch cannot be imported: {facts.import_error.message}"
    ram = host.ram_total_bytes()
    return Machine(
        hostname=host.hostname(),
        os=host.os_name(),
        os_release=platform.release(),
        platform=platform.platform(),
        cpu_model=host.cpu_model(),
        cpu_cores_logical=logical,
        cpu_cores_physical=physical,
        ram_total_bytes=ram,
        python=platform.python_version(),
        packages=packages,
        torch_cuda_build=facts.torch_cuda_build,
        cuda_available=facts.cuda_available,
        cuda_unavailable_reason="" if facts.cuda_available else reason,
        gpus=gpus,
        fingerprint=fingerprint([host.cpu_model(), str(logical), str(round(ram / 2**30)), host.os_name(),
                                 ",".join(g.name for g in gpus), str(packages.get("torch")),
                                 str(packages.get("moshi"))]),
    )
