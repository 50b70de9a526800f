"""Shared fixtures: scenario files written on the fly, the harness CLI as a real subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

# In-process engine tests run eager: moshi would otherwise torch.compile its output norm on the CPU
# (tens of seconds). Workers get their own setting from the run configuration, not from here.
os.environ.setdefault("NO_TORCH_COMPILE", "1")

# OpenMP threads that wait for each other sleep instead of spinning. scripts/test runs two test processes on two
# cores, and most tests start real workers with two torch threads: spinning, a thread waits out its partner's whole
# time slice at every barrier, and cpu-smoke's six workers took 400 s beside another test process instead of 86 s
# (measured on the 2-core machine, the same pairing with PASSIVE). Only the tests' workers inherit this: what the
# harness measures for a user runs with OpenMP's own default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# One probe per kind of probe for the whole session: `harness run` probes this machine in every test that runs it
# (a probe worker: seconds of torch and bitsandbytes imports and CPU timing), and the machine and software do not
# change within a session. harness/probe/cache.py keys each reply on all the probe depends on; this folder lives as
# long as the session. `HARNESS_PROBE_CACHE= pytest ...` (set, empty) runs every probe for real; a test marked
# `real_probe` (one that checks the probe itself) always does.
_PROBE_CACHE = "HARNESS_PROBE_CACHE"
_OWN_PROBE_CACHE = None if _PROBE_CACHE in os.environ else tempfile.mkdtemp(prefix="harness-tests-probe-")
if _OWN_PROBE_CACHE is not None:
    os.environ[_PROBE_CACHE] = _OWN_PROBE_CACHE

REPO = Path(__file__).resolve().parents[1]
TINY = "personaplex-tiny"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`harness ...` in a fresh interpreter, as a user would run it."""
    # The checkout first, then whatever PYTHONPATH brings (on the lent GPU machine: the carried wheels' folder).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=path)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_run_until(scenario: Path, out: Path, marker: Path, timeout_s: float) -> subprocess.Popen:
    """`harness run SCENARIO --out OUT` started in a fresh interpreter (stdout and stderr piped), returned once
    `marker` exists (the run reached the worker it names; the caller asserts it does) or the command ended."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
                            cwd=scenario.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_PROBE_CACHE is not None:
        shutil.rmtree(_OWN_PROBE_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _real_probe_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test marked `real_probe` checks the probe itself: its probes (and its CLI's) run their worker."""
    if request.node.get_closest_marker("real_probe") is not None:
        monkeypatch.delenv(_PROBE_CACHE, raising=False)


@pytest.fixture(autouse=True)
def _console_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output piped to a test is as wide as the CLI's default for a pipe (160 columns), whoever runs pytest: an
    xdist worker is given COLUMNS=80, which would wrap the lines the tests read."""
    monkeypatch.setenv("COLUMNS", "160")


@pytest.fixture(autouse=True)
def _no_ci_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports written by tests never reach the CI job's step summary (a test that checks it sets its own)."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# The heaviest files first, so that with `pytest -n 2 --dist loadfile --no-loadscope-reorder` (scripts/test) the
# longest pole starts at once instead of running alone at the end: longest processing time first. Measured with
# --durations on the 2-core machine (file totals, seconds, quiet): a scheduling hint only; a file not named here runs
# after these in collection order, and a serial run is unaffected but for the order.
HEAVIEST_FIRST = (
    "test_end_to_end.py",  # cpu-smoke: six real workers (80-170 s)
    "test_faults.py", "test_telemetry_soak_compare.py", "test_gpu_check.py", "test_endpoint_personaplex.py",
    "test_fleet.py", "test_run_options.py", "test_probe_plan.py", "test_capacity_run.py", "test_engine.py",
    "test_hub_weights.py", "test_quantized.py", "test_hostile.py", "test_serving.py", "test_nvidia_fork.py",
    "test_endpoint_scenario.py", "test_certify_order.py", "test_confirm_realtime.py", "test_interrupt.py",
    "test_user_environment.py",
)


def _schedule_rank(item: pytest.Item) -> int:
    name = item.path.name
    return HEAVIEST_FIRST.index(name) if name in HEAVIEST_FIRST else len(HEAVIEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_schedule_rank)  # stable: within a file, and among the files not named, the collection order
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items or cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False on this machine")
    for item in gpu_items:
        item.add_marker(skip)
