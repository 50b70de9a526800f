"""The environment a measurement depends on, as the worker sees it; and re-running a job by hand.

Standard library only (the worker runs where pydantic may be absent).
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

# Prefixes of variables that can change what a run measures: CUDA and allocator settings, torch and dynamo
# switches, moshi's NO_TORCH_COMPILE / NO_CUDA_GRAPH (not any NO_*: NO_PROXY and NO_COLOR change nothing measured,
# and they are part of a run's identity), thread pools.
MEASUREMENT_ENV_PREFIXES = ("CUDA_", "TORCH", "PYTORCH_", "NO_TORCH_COMPILE", "NO_CUDA_GRAPH", "OMP_", "MKL_", "THP_",
                            "NVIDIA_TF32")

REEXEC_MARK = "HARNESS_WORKER_REEXEC"


def measurement_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    return {k: v for k, v in sorted(environ.items()) if k.startswith(MEASUREMENT_ENV_PREFIXES)}


def ensure_job_env(wanted: Mapping[str, str], argv: list[str]) -> None:
    """A job written by `harness run` carries the environment it must run under. Started by hand
    (`python -m harness.worker .work/<run>/job.json`) from another shell, the worker re-executes itself
    with exactly that environment before torch is imported, so the hand run measures the same thing."""
    if not wanted or os.environ.get(REEXEC_MARK):
        return
    current = measurement_env()
    if all(os.environ.get(k) == v for k, v in wanted.items()) and set(current) <= set(wanted):
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(MEASUREMENT_ENV_PREFIXES)}
    env.update(wanted)
    env[REEXEC_MARK] = "1"
    print("harness worker: re-running with the job's environment: "
          + " ".join(f"{k}={v}" for k, v in sorted(wanted.items())), file=sys.stderr)
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "harness.worker", *argv[1:]], env)
