"""Certify what decides, in the order of recommendation (harness.session.runner._certify, harness.verdict.screen):
the planner's predicted best of the frame the verdict recommends first is measured first, straight to the
certifying length; once a frame has a certified run, the later frames' best are not measured on. Real CLI, tiny
workers, both directions: the preferred frame certifies (the others stay screened only), and it fails (the next
frame is certified, the one after it is not)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

# 4 clean frames certify (0 late of 4 bounds the late share at 44% < 50% at 90%); a 5 s budget every frame of
# personaplex-tiny meets; the screen measures 2. Three frames: NVIDIA's server (bf16), moshi's (fp32), the model.
SCENARIO = """
name: certify-order
preset: personaplex-tiny
warmup_frames: 2
frame_budget_ms: 5000
torch_threads: 1
telemetry_hz: 0
persona: off
confirm_frames: 0
screen_frames: 2
criteria: {min_frames: 4, min_seconds: 0, burst_frames: 1, late_frame_target: 0.5, confidence: 0.9}
defaults: {device: cpu, compile: off, cuda_graphs: off}
runs:
  - {name: server, dtype: bfloat16%s}
  - {name: moshi, dtype: float32}
  - {name: model, dtype: float32, serving: model}
"""


def _run(tmp_path: Path, leader_extra: str = "") -> dict:
    scenario = tmp_path / "certify-order.yaml"
    scenario.write_text(SCENARIO % leader_extra)
    out = tmp_path / "out"
    done = run_cli("run", str(scenario), "--out", str(out), timeout=900)
    # 0 GO, 8 INCONCLUSIVE (a loaded machine), 1 when a run failed (the second test's leader, on purpose)
    assert done.returncode in (0, 1, 8), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def _frames(run: dict) -> int:
    return len(run["metrics"]["samples_ms"]) if run.get("metrics") else 0


def test_the_preferred_frame_certifies_and_the_others_are_not_measured_on(tmp_path: Path) -> None:
    results = _run(tmp_path)
    runs = {r["name"]: r for r in results["runs"]}
    server = runs["server"]
    assert server["screen_frames"] is None and _frames(server) == 4, "the leader: straight to the certifying length"
    assert len(server["metrics"]["processes"]) <= 1, "one worker start, no screen then certify"
    assert "measured first" in server["screening"]
    for name in ("moshi", "model"):
        assert runs[name]["screen_frames"] == 2 and _frames(runs[name]) == 2, f"{name}: screened only"
        assert runs[name]["screening"].startswith("not measured on: the decision was reached on the PersonaPlex"), \
            runs[name]["screening"]
    verdict = results["verdict"]
    if verdict["go"]:  # a machine loaded past 4.5 s per frame (or disturbed) says so instead: nothing to rank then
        assert verdict["ranked"][0] == "server"
        outcomes = {a["name"]: a["outcome"] for a in verdict["assessments"]}
        assert outcomes["moshi"] == outcomes["model"] == "not enough evidence"
        alternatives = [s for s in verdict["next_steps"] if s.startswith("uncertified alternative")]
        assert len(alternatives) == 2 and all("--only" in s for s in alternatives), verdict["next_steps"]
    # the job the worker got: the certifying length, not the screen's
    assert json.loads((tmp_path / "out" / ".work" / "server" / "job.json").read_text())["frames"] == 4


def test_when_the_preferred_frame_fails_the_next_frame_is_certified(tmp_path: Path) -> None:
    # The leader cannot finish (a 1 s limit on its worker): the screen decides as without it, frame by frame.
    results = _run(tmp_path, ", timeout_s: 1")
    runs = {r["name"]: r for r in results["runs"]}
    assert runs["server"]["status"] != "ok"
    assert "not certified, so the screen decided" in runs["server"]["screening"]
    moshi, model = runs["moshi"], runs["model"]
    assert moshi["screening"].startswith("certified"), moshi["screening"]
    assert moshi["screen_frames"] is None and _frames(moshi) == 4, "screen (2) + certifying process (2)"
    assert [p["frames"] for p in moshi["metrics"]["processes"]] == [2, 2]
    assert model["screen_frames"] == 2 and _frames(model) == 2
    assert model["screening"].startswith("not measured on: the decision was reached on the moshi"), model["screening"]
