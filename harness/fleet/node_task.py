"""What a fleet task does on its node: run `python -m harness run` there and hand its results back.

This module runs inside a Ray worker on the node. It imports no torch (the `harness run` subprocess keeps
the parent/worker split: each configuration gets its own worker process there; `supervise` sits between
them so that no process outlives the task) and no Ray at import time,
so the driver can build jobs without Ray's worker context. The task is a generator: it first yields
`Started` (so the driver knows it was placed, and where), then one `NodeOutcome`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Union

# What comes back from a node's results folder (the .work/ job files stay there: they are for re-running).
RETURNED_FILES = ("results.json", "results.csv", "report.html", "summary.md", "harness-run.log")
RETURNED_DIRS = ("logs",)
MAX_RETURNED_BYTES = 64 * 2**20
RUN_LOG = "harness-run.log"
STATE_DIR = ".fleet-task"


def _wait_for_pid(path: Path, supervisor: subprocess.Popen, within_s: float = 60.0) -> Optional[int]:
    """`harness run`'s pid as the supervisor wrote it (None if the supervisor ended first)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and supervisor.poll() is None:
        try:
            return int(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            time.sleep(0.05)
    return None


def _exit_of(path: Path, supervisor_code: int) -> tuple[Optional[int], Optional[str]]:
    """(exit code, signal name) of `harness run`, from the supervisor's exit.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if supervisor_code < 0:
            return None, signal.Signals(-supervisor_code).name
        return supervisor_code, None
    return data.get("exit_code"), data.get("signal")


@dataclass(frozen=True)
class NodeJob:
    """One (machine, scenario): everything the node needs, with no file of the driver's assumed there."""

    scenario_name: str
    scenario_text: str
    harness_args: tuple[str, ...] = ()
    shared_out_dir: Optional[str] = None  # the driver's folder for this machine, when every node sees it
    scratch_root: Optional[str] = None  # where a node-local results folder goes (default: the node's temp dir)
    python: Optional[str] = None  # interpreter with harness installed on the node (default: the worker's own)


@dataclass(frozen=True)
class Started:
    node_id: str
    hostname: str
    task_pid: int  # the Ray worker process running this task
    harness_pid: int  # the `harness run` process
    out_dir: str


@dataclass
class NodeOutcome:
    node_id: str
    hostname: str
    exit_code: Optional[int]
    signal_name: Optional[str]
    wall_s: float
    out_dir: str
    shared: bool  # True: the results stayed in out_dir (shared filesystem); False: they are in `files`
    files: dict[str, bytes] = field(default_factory=dict)
    log_tail: str = ""
    note: str = ""


def _collect(out_dir: Path) -> tuple[dict[str, bytes], str]:
    files: dict[str, bytes] = {}
    total = 0
    skipped: list[str] = []
    candidates = [out_dir / name for name in RETURNED_FILES]
    for folder in RETURNED_DIRS:
        if (out_dir / folder).is_dir():
            candidates += sorted(p for p in (out_dir / folder).iterdir() if p.is_file())
    for path in candidates:
        if not path.is_file():
            continue
        size = path.stat().st_size
        rel = path.relative_to(out_dir).as_posix()
        if total + size > MAX_RETURNED_BYTES:
            skipped.append(rel)
            continue
        files[rel] = path.read_bytes()
        total += size
    note = f"not returned (over {MAX_RETURNED_BYTES >> 20} MiB): {', '.join(skipped)}" if skipped else ""
    return files, note


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def run_on_node(job: NodeJob, node_id: str) -> Iterator[Union[Started, NodeOutcome]]:
    """Run the scenario here; yield Started once the subprocess is up, then the NodeOutcome."""
    hostname = socket.gethostname()
    if job.shared_out_dir:
        out_dir = Path(job.shared_out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        work_dir = out_dir
    else:
        if job.scratch_root:
            Path(job.scratch_root).mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix="harness-fleet-", dir=job.scratch_root))
        out_dir = work_dir / "results"
    scenario_file = work_dir / f"{job.scenario_name}.fleet-scenario.yaml"
    scenario_file.write_text(job.scenario_text, encoding="utf-8")
    python = job.python or sys.executable
    command = [python, "-m", "harness", "run", str(scenario_file), "--out", str(out_dir), *job.harness_args]
    out_dir.mkdir(parents=True, exist_ok=True)
    state = out_dir / STATE_DIR
    state.mkdir(exist_ok=True)
    log_path = out_dir / RUN_LOG
    started = time.monotonic()
    with open(log_path, "wb") as log:
        # The supervisor dies with this worker and then kills `harness run` and its workers; it also kills
        # the workers a killed `harness run` leaves behind (harness/fleet/supervise.py).
        proc = subprocess.Popen([python, "-m", "harness.fleet.supervise", str(state), "--", *command],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, COLUMNS="160"))
        harness_pid = _wait_for_pid(state / "pid", proc)
        yield Started(node_id=node_id, hostname=hostname, task_pid=os.getpid(), harness_pid=harness_pid or proc.pid,
                      out_dir=str(out_dir))
        supervisor_code = proc.wait()
    wall = time.monotonic() - started
    exit_code, signal_name = _exit_of(state / "exit.json", supervisor_code)
    shutil.rmtree(state, ignore_errors=True)
    outcome = NodeOutcome(node_id=node_id, hostname=hostname, exit_code=exit_code, signal_name=signal_name,
                          wall_s=wall, out_dir=str(out_dir), shared=bool(job.shared_out_dir),
                          log_tail=_tail(log_path))
    if not job.shared_out_dir:
        outcome.files, outcome.note = _collect(out_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
    yield outcome
