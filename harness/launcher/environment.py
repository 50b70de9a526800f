"""The environment a worker starts with: everything moshi and torch read at import time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from harness.records.config import RunConfig

# Settings that would silently change what a run measures if inherited from the user's shell.
_CONTROLLED = ("NO_TORCH_COMPILE", "NO_CUDA_GRAPH", "TORCHDYNAMO_DISABLE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env(run: RunConfig, torch_threads: Optional[int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CONTROLLED}
    if not run.compile:
        env["NO_TORCH_COMPILE"] = "1"
    if not run.cuda_graphs:
        env["NO_CUDA_GRAPH"] = "1"
    if torch_threads:
        env["OMP_NUM_THREADS"] = str(torch_threads)
        env["MKL_NUM_THREADS"] = str(torch_threads)
    # No tuned settings a server would not have (THP_MEM_ALLOC_ENABLE=1 was set here once: it made loading faster
    # than any deployment sees). A variable the user set is inherited and recorded in the engine's env.
    env["PYTHONUNBUFFERED"] = "1"
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def probe_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env
