"""Fault tolerance with real workers: killed, timed out, crashed. A failure is a record; the next run starts."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import pytest
from rich.console import Console

from harness.contract.wire import ProgressEvent
from harness.records.store import load_session
from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner, WorkerHooks

pytestmark = pytest.mark.slow

THREE_RUNS = """
name: faults
preset: personaplex-tiny
persona: off  # what these tests check does not need the persona prefill
frames: {frames}
warmup_frames: 2
torch_threads: 1
timeout_s: {timeout}
criteria: {{min_frames: 1, min_seconds: 0}}   # exactly `frames`: the faults, not the verdict, are under test
defaults:
  device: cpu
  dtype: float32
runs:
  - name: before
  - name: victim
  - name: after
"""


def _runner(path: Path, out: Path, hooks: WorkerHooks, **options) -> ScenarioRunner:
    return ScenarioRunner(load_scenario(path), out, RunOptions(**options), Console(file=io.StringIO()), hooks)


def test_kill_9_mid_run_is_recorded_and_the_next_run_is_measured(tmp_path: Path, write_scenario) -> None:
    path = write_scenario(THREE_RUNS.format(frames=8, timeout=300))
    pids: dict[str, int] = {}
    killed: list[int] = []

    def started(run: str, pid: int) -> None:
        pids[run] = pid

    def event(run: str, ev: ProgressEvent) -> None:
        if run == "victim" and ev.event == "frame" and ev.index == 4 and not killed:
            os.kill(pids[run], signal.SIGKILL)
            killed.append(pids[run])

    runner = _runner(path, tmp_path / "out", WorkerHooks(started=started, event=event))
    session = runner.run(load_scenario(path).runs)

    by_name = {r.name: r for r in session.runs}
    victim = by_name["victim"]
    assert killed == [victim.worker_pid]
    assert victim.status == "failed" and victim.signal == "SIGKILL" and victim.exit_code is None
    assert "killed by SIGKILL during frames" in victim.reason
    assert len(victim.partial_samples_ms) == 5, "frames measured before the kill are kept"
    assert by_name["before"].status == "ok" and by_name["after"].status == "ok"
    assert by_name["after"].metrics is not None and by_name["after"].metrics.frames == 8
    assert len({r.worker_pid for r in session.runs}) == 3
    on_disk = load_session(tmp_path / "out")
    assert [r.status for r in on_disk.runs] == ["ok", "failed", "ok"] and on_disk.state == "complete"


def test_timeout_kills_the_worker_and_keeps_going(tmp_path: Path, write_scenario) -> None:
    text = THREE_RUNS.format(frames=3, timeout=300).replace(
        "  - name: victim\n", "  - name: victim\n    timeout_s: 2.5\n")
    path = write_scenario(text)
    session = _runner(path, tmp_path / "out", WorkerHooks()).run(load_scenario(path).runs)
    victim = next(r for r in session.runs if r.name == "victim")
    assert victim.status == "failed" and "timed out after 2.5 s" in victim.reason, victim.reason
    assert victim.diagnosis is not None and victim.diagnosis.kind == "timeout"
    assert [r.status for r in session.runs] == ["ok", "failed", "ok"]
    with pytest.raises(ProcessLookupError):
        os.kill(victim.worker_pid, 0)  # really gone


def test_worker_exception_is_a_failed_record_with_its_traceback(tmp_path: Path, write_scenario) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x00" * 16)  # corrupt: the worker fails while loading
    path = write_scenario(f"""
        name: crash
        preset: personaplex-tiny
        persona: off  # what these tests check does not need the persona prefill
        weights: {folder}
        frames: 2
        warmup_frames: 2
        criteria: {{min_frames: 1, min_seconds: 0}}
        runs:
          - device: cpu
        """)
    session = _runner(path, tmp_path / "out", WorkerHooks()).run(load_scenario(path).runs)
    run = session.runs[0]
    assert run.status == "failed" and run.exit_code == 1 and run.signal is None
    assert "SafetensorError" in run.reason or "Error" in run.reason.split(":")[0]
    assert "Traceback" in run.stderr_tail
    log = (tmp_path / "out" / "logs" / f"{run.name}.stderr.log").read_text()
    assert "Traceback" in log
    assert json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]["status"] == "failed"
