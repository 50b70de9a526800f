"""Telemetry, paced soak and regression checks, on real workers and the real CLI."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness.compare.hardware import hardware_key
from harness.records.schema import Percentiles
from harness.records.store import load_session, write_session
from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner
from harness.stats.percentiles import percentile, summarize
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

SOAK = """
name: soak
preset: personaplex-tiny
persona: off  # what these tests check does not need the persona prefill
duration: 3s
frame_budget_ms: 250
pace: realtime
warmup_frames: 2
torch_threads: 2
telemetry_hz: 10
criteria: {min_frames: 1, min_seconds: 0}   # the soak's own 3 s, not the default minimums
runs:
  - device: cpu
    dtype: float32
"""


@pytest.fixture(scope="module")
def soak_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("soak")
    scenario = folder / "soak.yaml"
    scenario.write_text(SOAK)
    loaded = load_scenario(scenario)
    ScenarioRunner(loaded, folder / "out", RunOptions(), Console(file=io.StringIO())).run(loaded.runs)
    return folder / "out"


def test_soak_is_paced_and_summarised(soak_results: Path) -> None:
    run = load_session(soak_results).runs[0]
    assert run.status == "ok", run.reason
    m = run.metrics
    assert m is not None and m.frames == 12  # 3 s of 250 ms frames
    # Paced: measured frame j never starts before its audio has arrived, j frames after the first measured one.
    # (After a late frame the next one may start at once, so gaps between neighbours can be short; a loaded
    # machine can only make starts later, never earlier, so this holds under any load.)
    early = [j for j, start in enumerate(m.frame_start_s) if start - m.frame_start_s[0] < j * 0.250 - 0.002]
    assert early == [], f"frames started before their audio arrived: {early}"
    assert m.soak is not None and m.soak.rss_growth_mb is not None and not m.soak.leak_suspected


def test_telemetry_cpu_present_gpu_unavailable_with_reason(soak_results: Path) -> None:
    m = load_session(soak_results).runs[0].metrics
    assert m is not None and m.telemetry is not None and m.telemetry_summary is not None
    t = m.telemetry
    # A sampler that sleeps between samples takes at most one per 100 ms (a loaded machine can only delay it)
    # and spends a small share of its wall time on the CPU.
    samples_per_wall_s = len(t.t_s) / t.sampler_wall_s
    assert 0 < samples_per_wall_s <= 10 * 1.1, "10 Hz at most"
    assert t.sampler_cpu_s / t.sampler_wall_s < 0.05, "the sampler sleeps between samples"
    assert t.cpu_percent and all(0 <= v <= 100 * 64 for v in t.cpu_percent)
    assert t.rss_bytes and min(t.rss_bytes) > 100 * 2**20
    assert t.sources["gpu"].startswith("unavailable: the run is on the CPU")
    assert t.gpu_temp_c == [] and t.gpu_power_w == [], "missing sources are absent, never zeros"
    summary = m.telemetry_summary
    assert summary.cpu_percent_mean is not None and summary.gpu_power_mean_w is None
    assert "gpu" in summary.unavailable and not summary.throttled
    html = (soak_results / "report.html").read_text()
    assert 'id="fig-telemetry"' in html


def _quiet_copy(source: Path, target: Path) -> Path:
    """The soak as a quiet machine measures it: steady frames (its own median, +-2% in a fixed pattern) during which
    no other process used a CPU. The soak itself runs beside whatever else the machine does (another test process,
    a busy core): 12 frames of a loaded machine can spread from 0.2 to 3 s, and a compare rightly calls a 2x
    slower copy of those inconclusive, or doubts a slowdown that a measured disturbance explains (the unit tests of
    harness.compare check both). These tests check the CLI on a clear regression; the record around the frames
    (machine, software, schema, telemetry) stays the real soak's."""
    shutil.copytree(source, target)
    session = load_session(target)
    for run in session.runs:
        m = run.metrics
        if m is None:
            continue
        median = percentile(m.samples_ms, 50)
        m.samples_ms = [median * (1.0 + 0.01 * ((7 * i) % 5 - 2)) for i in range(len(m.samples_ms))]
        m.ms_per_step = Percentiles.model_validate(summarize(m.samples_ms))
        if m.frame_cpu is not None:
            m.frame_cpu.others_cpu_ms = [0.0] * len(m.frame_cpu.others_cpu_ms)
    write_session(session, target)
    return target


def _slowed_copy(source: Path, target: Path, factor: float) -> Path:
    shutil.copytree(source, target)
    session = load_session(target)
    for run in session.runs:
        if run.metrics is not None:
            run.metrics.samples_ms = [v * factor for v in run.metrics.samples_ms]
            for name in ("p50", "p90", "p99", "max", "min", "mean", "std"):
                setattr(run.metrics.ms_per_step, name, getattr(run.metrics.ms_per_step, name) * factor)
            cpu = run.metrics.frame_cpu
            if cpu is not None:  # slower code spends more CPU time, not more time waiting for a CPU
                cpu.cpu_ms = [v * factor for v in cpu.cpu_ms]
                cpu.process_cpu_ms = [v * factor for v in cpu.process_cpu_ms]
                cpu.stage_cpu_ms = {k: [v * factor for v in vs] for k, vs in cpu.stage_cpu_ms.items()}
    session.created_at = session.created_at.replace(year=session.created_at.year + 1)
    write_session(session, target)
    return target


def test_compare_cli_exit_codes_and_markdown(soak_results: Path, tmp_path: Path) -> None:
    soak_results = _quiet_copy(soak_results, tmp_path / "quiet")
    same = run_cli("compare", str(soak_results), str(soak_results), "--markdown", str(tmp_path / "same.md"))
    assert same.returncode in (0, 6), same.stdout + same.stderr  # never a regression against itself
    assert (tmp_path / "same.md").read_text().startswith(("## Performance: no regression",
                                                           "## Performance: INCONCLUSIVE"))
    slower = _slowed_copy(soak_results, tmp_path / "slower", 2.0)
    done = run_cli("compare", str(soak_results), str(slower), "--threshold", "p50:5%", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["runs"][0]["outcome"] == "regression" and verdict["same_hardware"]
    assert verdict["exit_code"] == 1 and verdict["runs"][0]["statistics"][0]["low"] > 0.05
    bad = run_cli("compare", str(soak_results))
    assert bad.returncode == 2 and "BASELINE and CURRENT" in bad.stderr


def test_history_by_hardware_and_trend(soak_results: Path, tmp_path: Path) -> None:
    soak_results = _quiet_copy(soak_results, tmp_path / "quiet")
    history = tmp_path / "history"
    nothing = run_cli("compare", "--history", str(history), str(soak_results))
    assert nothing.returncode == 4 and "NO BASELINE" in nothing.stdout, "the first night is loud, not a pass"
    first = run_cli("history", "add", str(soak_results), "--dir", str(history))
    assert first.returncode == 0
    key = hardware_key(load_session(soak_results).machine)
    assert len(list((history / key).glob("*.json"))) == 1
    later = _slowed_copy(soak_results, tmp_path / "later", 2.0)
    done = run_cli("compare", "--history", str(history), str(later), "--threshold", "p50:10%")
    assert done.returncode == 1 and "REGRESSION" in done.stdout
    run_cli("history", "add", str(later), "--dir", str(history))
    trend = run_cli("history", "trend", "--dir", str(history), "--out", str(tmp_path / "trend.png"))
    assert trend.returncode == 0 and (tmp_path / "trend.png").stat().st_size > 10_000


SLOWDOWN = """
name: batch
preset: personaplex-tiny
persona: off  # what these tests check does not need the persona prefill
frames: 40
warmup_frames: 3
batch_size: {batch}
torch_threads: 1
telemetry_hz: 0
runs:
  - device: cpu
    dtype: float32
"""


def test_eight_streams_against_one_is_a_regression(tmp_path: Path) -> None:
    """A real slowdown, really measured, with an effect load cannot erase: the same run at batch 8 does about
    twice to three times the work per step of batch 1. The two sessions run side by side, one torch thread
    each, so that load from elsewhere on this shared machine (which moved single sessions by 2-4x) falls on
    both alike. No absolute time is asserted, only the comparison's verdict."""
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=str(REPO))
    workers = {}
    for batch in (1, 8):
        scenario = tmp_path / f"batch{batch}.yaml"
        scenario.write_text(SLOWDOWN.format(batch=batch))
        out = tmp_path / f"b{batch}"
        workers[batch] = (out, subprocess.Popen([sys.executable, "-m", "harness", "run", str(scenario), "--out",
                                                 str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, text=True))
    for out, process in workers.values():
        text, _ = process.communicate(timeout=900)
        assert load_session(out).runs[0].status == "ok", text
    base, slow = workers[1][0], workers[8][0]
    refused = run_cli("compare", str(base), str(slow))
    assert refused.returncode == 5 and "batch_size 1 -> 8" in refused.stdout
    done = run_cli("compare", str(base), str(slow), "--allow-difference", "batch_size",
                   "--threshold", "p50:10%", "--json")
    verdict = json.loads(done.stdout)
    run = verdict["runs"][0]
    if done.returncode == 6:
        # Another process kept the cores busy (CI under load, a `yes` on one core): either the interference the worker
        # measured is enough to explain the slowdown, or the frames are too noisy for a 10% threshold. Compare then
        # refuses to call it a regression and says which; the slowdown itself must still be seen, never "unchanged".
        assert run["outcome"] == "inconclusive", run
        assert "enough to explain a slowdown" in run["note"] or "noise" in run["note"], run
        assert (run["statistics"][0]["change"] or 0) > 0, run
        return
    assert done.returncode == 1, verdict["runs"]
    assert run["outcome"] == "regression" and run["statistics"][0]["low"] > 0.10
