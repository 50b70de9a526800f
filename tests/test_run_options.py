"""Bad input, exit codes, --resume and `device: auto`, through the real CLI (small runs, real workers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.records.schema import SCHEMA_VERSION
from tests.conftest import REPO, cuda_available, run_cli

TINY_RUNS = """
name: {name}
preset: personaplex-tiny
persona: off  # what these tests check does not need the persona prefill
frames: 3
warmup_frames: 2
frame_budget_ms: {budget}
torch_threads: 1
telemetry_hz: 0
criteria: {{min_frames: 1, min_seconds: 0}}
defaults: {{device: {device}, dtype: float32}}
runs:
{runs}
"""


def _scenario(folder: Path, runs: str, name: str = "opts", budget: float = 80.0, device: str = "cpu") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TINY_RUNS.format(name=name, budget=budget, device=device, runs=runs))
    return path


def test_a_run_name_that_climbs_out_of_the_output_folder_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    out = tmp_path / "deep" / "er" / "out"
    scenario = _scenario(tmp_path, '  - name: "../../victim"')
    done = run_cli("run", str(scenario), "--out", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{scenario}:13: runs[0].name: names may use letters, digits" in done.stderr
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not out.exists(), "nothing is created for an invalid scenario"


def test_markup_in_a_name_is_shown_literally_not_interpreted(tmp_path: Path) -> None:
    done = run_cli("run", str(_scenario(tmp_path, '  - name: "[/bold]"')))
    assert done.returncode == 2 and "(got '[/bold]')" in done.stderr and "Traceback" not in done.stderr


def test_a_results_file_that_does_not_validate_is_a_clear_error(tmp_path: Path) -> None:
    baseline = json.loads((REPO / "benchmarks" / "smoke-baseline" / "results.json").read_text())
    baseline["runs"][0]["status"] = "exploded"
    (tmp_path / "results.json").write_text(json.dumps(baseline))
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "not a valid results file: runs.0.status" in done.stderr
    baseline["schema_version"] = 99
    (tmp_path / "results.json").write_text(json.dumps(baseline))
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 2 and "newer than this harness reads" in done.stderr


def test_a_version_1_results_file_is_migrated(tmp_path: Path) -> None:
    shutil.copy(REPO / "benchmarks" / "smoke-baseline" / "results.json", tmp_path / "results.json")
    assert json.loads((tmp_path / "results.json").read_text())["schema_version"] == 1
    done = run_cli("report", str(tmp_path), "--update-results")
    assert done.returncode == 0, done.stderr
    migrated = json.loads((tmp_path / "results.json").read_text())
    assert migrated["schema_version"] == SCHEMA_VERSION
    ok = [r for r in migrated["runs"] if r["status"] == "ok"]
    assert ok and all(r["metrics"]["audio_s"] == pytest.approx(r["metrics"]["frames"] * 0.08) for r in ok)
    for run in ok:  # v3: the server's start apart from what a call pays
        m = run["metrics"]
        assert m["cold_start"]["total_s"] == pytest.approx(m["load_s"] + m["warmup_s"])
        assert m["cold_start"]["import_s"] is None and "time_to_first_audio_s" not in m


@pytest.mark.slow
def test_fail_on_nogo_exits_3_and_resume_keeps_what_was_measured(tmp_path: Path) -> None:
    # A 1 ms budget: nothing is real time, so the verdict is NO-GO on any machine.
    scenario = _scenario(tmp_path, "  - name: first\n  - name: second\n    compile: off", budget=1.0)
    out = tmp_path / "out"
    done = run_cli("run", str(scenario), "--out", str(out), "--fail-on-nogo")
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    first = json.loads((out / "results.json").read_text())
    assert first["verdict"]["go"] is False and all(r["status"] == "ok" for r in first["runs"])

    done = run_cli("run", str(scenario), "--resume", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads((out / "results.json").read_text())
    assert [r["resumed"] for r in again["runs"]] == [True, True]
    assert [r["worker_pid"] for r in again["runs"]] == [r["worker_pid"] for r in first["runs"]]
    assert "measured before with the same configuration" in done.stdout

    changed = scenario.read_text().replace("frames: 3", "frames: 4")
    scenario.write_text(changed)
    done = run_cli("run", str(scenario), "--resume", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    remeasured = json.loads((out / "results.json").read_text())
    assert [r["resumed"] for r in remeasured["runs"]] == [False, False], "a different measurement is re-run"
    assert all(r["metrics"]["frames"] == 4 for r in remeasured["runs"])

    # --only a new run: the other measured run stays; a run that left the scenario is dropped, and said so
    scenario.write_text(changed.replace("  - name: second\n    compile: off", "  - name: third\n    compile: off"))
    done = run_cli("run", str(scenario), "--resume", str(out), "--only", "third")
    assert done.returncode == 0, done.stderr[-2000:]
    kept = json.loads((out / "results.json").read_text())
    assert [(r["name"], r["resumed"]) for r in kept["runs"]] == [("first", True), ("third", False)]
    assert kept["runs"][0]["worker_pid"] == remeasured["runs"][0]["worker_pid"]
    assert "--resume: dropped second: no longer in the scenario" in done.stdout
    assert "--resume: kept 1 measured run(s) as they were: first" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(cuda_available(), reason="shows auto on a machine without a GPU")
def test_auto_on_a_machine_without_gpu_says_it_ran_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli("run", str(_scenario(tmp_path, "  - compile: off", device="auto")), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["name"] == "cpu-fp32-eager" and run["config"]["device"] == "cpu"
    assert run["config"]["resolved_from"] == "auto" and run["status"] == "ok"
    assert "device auto resolved to cpu" in (out / "report.html").read_text()


def test_time_limit_starts_nothing_after_it_and_says_so(tmp_path: Path) -> None:
    """`--time-limit`: the probe alone outlasts a 0.01 s limit, so no worker starts; each run is a skipped record
    with the reason, the session is complete, and the exit status is 0 (nothing failed)."""
    scenario = _scenario(tmp_path, "  - name: first\n  - name: second")
    out = tmp_path / "out"
    done = run_cli("run", str(scenario), "--out", str(out), "--time-limit", "0.01")
    assert done.returncode == 0, done.stdout + done.stderr
    session = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in session["runs"]] == ["skipped", "skipped"]
    assert all("--time-limit of 0.01 s was reached" in r["reason"] for r in session["runs"])
    assert not list(out.glob("logs/*.stderr.log")), "no worker started"
    bad = run_cli("run", str(scenario), "--time-limit", "0")
    assert bad.returncode == 2 and "must be a finite number above 0" in bad.stderr
