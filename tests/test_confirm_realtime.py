"""A GO found at pace: fast is run again at pace: realtime before it stands (real CLI, one tiny worker each)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cli

# Criteria loose enough that 4 clean frames certify (0 late of 4 bounds the late share at 44% < 50% at 90%) and a
# 5 s budget that any frame of personaplex-tiny meets: the run is GO, so the confirmation runs.
SCENARIO = """
name: confirm
preset: personaplex-tiny
frames: 4
warmup_frames: 2
frame_budget_ms: 5000
torch_threads: 1
telemetry_hz: 0
persona: off
confirm_frames: 2
criteria: {min_frames: 4, min_seconds: 0, burst_frames: 1, late_frame_target: 0.5, confidence: 0.9}
runs:
  - {name: tiny, device: cpu, dtype: float32}
"""


def test_a_fast_go_is_confirmed_by_a_paced_run(tmp_path: Path) -> None:
    scenario = tmp_path / "confirm.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    done = run_cli("run", str(scenario), "--out", str(out), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["runs"]] == ["tiny"], "the confirmation is not one of the ranked runs"
    confirmation = results["confirmation"]
    assert confirmation["name"] == "tiny" and confirmation["status"] == "ok"
    assert len(confirmation["metrics"]["samples_ms"]) == 2
    verdict = results["verdict"]
    assert verdict["confirmation"]["run"] == "tiny" and verdict["confirmation"]["frames"] == 2
    if verdict["go"]:
        assert any(r.startswith("confirmed at pace: realtime") for r in verdict["reasons"]), verdict["reasons"]
    else:  # a machine so loaded that the paced frames missed 4.5 s, or disturbed: the verdict says which
        assert "pace: realtime" in verdict["headline"], verdict["headline"]
    run = results["runs"][0]
    cpu = run["metrics"]["frame_cpu"]  # was the worker running? one entry per measured frame, from the real worker
    assert len(cpu["cpu_ms"]) == len(cpu["process_cpu_ms"]) == len(run["metrics"]["samples_ms"]) == 4
    assert all(0 < c <= w + 0.5 for c, w in zip(cpu["cpu_ms"], run["metrics"]["samples_ms"]))
    if cpu["sources"]["run_wait"] == "schedstat":
        assert len(cpu["run_wait_ms"]) == 4 and min(cpu["run_wait_ms"]) >= 0
    if "THP_MEM_ALLOC_ENABLE" not in os.environ:
        assert "THP_MEM_ALLOC_ENABLE" not in run["engine"]["env"], "no tuned setting a server would not have"
    assert (out / ".work" / "tiny.realtime" / "job.json").exists()
    job = json.loads((out / ".work" / "tiny.realtime" / "job.json").read_text())
    assert job["paced_frame_ms"] == 5000 and job["frames"] == 2
