"""The probe worker's reply kept for reuse, only where asked (HARNESS_PROBE_CACHE names a folder).

A probe worker costs seconds (importing torch and bitsandbytes, a meta build, timing a CPU frame) and answers the
same for the same machine and software. The test suite runs `harness run` dozens of times on one machine, so it
points HARNESS_PROBE_CACHE at a folder of its own for one session: the first probe of a kind runs for real, later
ones read its reply. Nothing else sets it; unset (a user's run), every probe runs its worker.

The key is everything the reply depends on: the probe's job (presets, device checks, CPU stage timing and its
threads), the interpreter, the harness code the worker runs (its source, hashed), the installed packages it
imports, the environment variables torch, moshi and the worker read, and the machine (CPU, cores, memory, OS,
GPUs and driver as NVML lists them). A reply that reports a failure is never kept: the next probe tries again.
Another interpreter's environment (`--python`) is never cached: its packages cannot be read from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Optional

from harness.contract.atomic import atomic_write_text
from harness.contract.hostinfo import cpu_model
from harness.contract.wire import ProbeJob, ProbeReply, to_json
from harness.probe import host
from harness.probe.nvml import read_nvml
from harness.records.validate import parse_wire

PROBE_CACHE_ENV = "HARNESS_PROBE_CACHE"
# What torch, moshi, bitsandbytes and the worker read from the environment at import or probe time.
_ENV_PREFIXES = ("CUDA_", "NVIDIA_", "TORCH", "OMP_", "MKL_", "BNB_", "HARNESS_", "NO_TORCH_COMPILE", "NO_CUDA_GRAPH",
                 "PYTHONPATH", "LD_LIBRARY_PATH", "LD_PRELOAD")
_PACKAGE = Path(__file__).resolve().parents[1]


def cache_folder() -> Optional[Path]:
    value = os.environ.get(PROBE_CACHE_ENV, "")
    return Path(value) if value else None


def _worker_code_digest() -> str:
    """The code a probe worker runs: the worker package and the contract it loads, byte for byte."""
    digest = hashlib.sha256()
    for path in sorted([*(_PACKAGE / "worker").rglob("*.py"), *(_PACKAGE / "contract").rglob("*.py")]):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def probe_key(job: ProbeJob) -> str:
    nvml = read_nvml()
    logical, physical = host.cores()
    facts = {
        "job": {"presets": job.presets, "device_checks": job.device_checks, "cpu_stages": job.cpu_stages,
                "cpu_threads": job.cpu_threads},
        "python": [sys.executable, platform.python_version()],
        "worker_code": _worker_code_digest(),
        "packages": host.package_versions(),
        "environment": {name: value for name, value in sorted(os.environ.items())
                        if name.startswith(_ENV_PREFIXES) and name != PROBE_CACHE_ENV},
        "machine": [cpu_model(), logical, physical, host.ram_total_bytes(), host.os_name(), platform.release(),
                    [gpu.name for gpu in nvml.gpus], nvml.driver],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_reply(folder: Path, key: str) -> Optional[ProbeReply]:
    """The reply kept under `key`; None when there is none or it cannot be read (then the probe runs)."""
    try:
        return parse_wire(ProbeReply, (folder / f"probe-{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def keep_reply(folder: Path, key: str, reply: ProbeReply) -> None:
    if reply.facts.import_error is not None or reply.error is not None:
        return  # a failed probe is asked again, never replayed
    atomic_write_text(folder / f"probe-{key}.json", to_json(reply))
