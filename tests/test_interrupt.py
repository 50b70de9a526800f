"""Nothing measured is lost on the way out: a soak stopped by SIGTERM mid-measurement keeps the frames of the run
in flight (recorded as interrupted, kept and never judged). A real `harness run` in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SOAK = """
name: soak-stop
preset: personaplex-tiny
persona: off
duration: 30m
frame_budget_ms: 5000  # no frame is late on a loaded machine: the worker's early stop must not end the soak
warmup_frames: 2
torch_threads: 1
telemetry_hz: 0
defaults: {device: cpu, dtype: float32}
runs:
  - name: soak
"""


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_sigterm_mid_soak_keeps_the_frames_of_the_run_in_flight(tmp_path: Path) -> None:
    scenario = tmp_path / "soak.yaml"
    scenario.write_text(SOAK)
    out, log = tmp_path / "out", tmp_path / "stdout.log"
    # TTY_COMPATIBLE + TTY_INTERACTIVE + unbuffered: rich draws its live progress into the file as a terminal's,
    # so that the test sees measured frames arrive (the display's "frames (measured)").
    env = dict(os.environ, PYTHONPATH=str(REPO), TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", PYTHONUNBUFFERED="1",
               COLUMNS="200")
    with log.open("w") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(scenario), "--out", str(out)],
                                cwd=tmp_path, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while "frames (measured)" not in log.read_text(errors="replace") and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "frames (measured)" in log.read_text(errors="replace"), "the worker measured frames"
        time.sleep(2.0)  # a few more frames on the progress pipe
        family = psutil.Process(proc.pid).children(recursive=True)
        assert family, "a worker was running"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    psutil.wait_procs(family, timeout=10)
    assert not [p.pid for p in family if _alive(p)], "a worker outlived harness run"
    results = json.loads((out / "results.json").read_text())
    assert results["state"] == "interrupted"
    [run] = results["runs"]
    assert run["status"] == "interrupted" and "SIGTERM" in run["reason"]
    assert len(run["kept_samples_ms"]) > 0 and run["kept_process_frames"] == [len(run["kept_samples_ms"])]
    assert len(run["kept_samples_ms"]) < 360, "stopped mid-measurement"
    assert all(ms > 0 for ms in run["kept_samples_ms"])
    verdict = results["verdict"]
    assert not verdict["go"] and verdict["decision"] != "GO", "an interrupted run is kept, never judged real time"
    assert (out / "report.html").is_file()
