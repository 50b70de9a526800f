"""The README's main job, for real: every CPU-runnable configuration, one worker each, through the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.records.schema import SCHEMA_VERSION
from harness.scenario.load import load_scenario
from harness.worker.pipeline.server_frame import STAGES_BY_SERVING
from tests.conftest import REPO, cuda_available, run_cli

pytestmark = pytest.mark.slow


def test_cpu_smoke_runs_every_cpu_configuration_in_its_own_worker(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    done = run_cli("run", "scenarios/cpu-smoke.yaml", "--out", str(out), "--frames", "4", "--warmup", "2",
                   timeout=1800)  # six real workers: minutes when other work shares the two cores
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr

    results = json.loads((out / "results.json").read_text())
    assert results["schema_name"] == "harness.results" and results["schema_version"] == SCHEMA_VERSION
    assert results["state"] == "complete" and results["weights"] == "synthetic"
    assert {c["name"] for c in results["probe"]} >= {"os", "cuda", "triton", "bitsandbytes"}
    assert results["architecture"]["preset"] == "personaplex-tiny"
    machine = results["machine"]
    assert machine["cpu_cores_logical"] >= 1 and machine["ram_total_bytes"] > 2**30
    runs = {r["name"]: r for r in results["runs"]}
    assert set(runs) == {"cpu-fp32-eager", "cpu-bf16-eager", "cpu-fp16-eager", "cpu-bf16-int8-eager",
                         "cpu-bf16-offload-eager", "cpu-bf16-compile", "cpu-bf16-eager-graphs",
                         "cuda-bf16-compile-graphs"}
    ok = {n: r for n, r in runs.items() if r["status"] == "ok"}
    assert set(ok) == {n for n in runs if n.startswith("cpu-") and n != "cpu-bf16-eager-graphs"}
    assert "CUDA graphs need a CUDA device" in runs["cpu-bf16-eager-graphs"]["reason"]
    if not cuda_available():
        assert runs["cuda-bf16-compile-graphs"]["status"] == "skipped"
        assert runs["cuda-bf16-compile-graphs"]["reason"].startswith("CUDA is not available on this machine")

    assert len({r["worker_pid"] for r in ok.values()}) == len(ok), "one worker process per run"
    for name, run in ok.items():
        m = run["metrics"]
        assert len(m["samples_ms"]) == 4 and m["warmup_frames"] == 2
        assert 0 < m["ms_per_step"]["p50"] <= m["ms_per_step"]["p99"] <= m["ms_per_step"]["max"]
        assert m["rtf"] == pytest.approx(m["ms_per_step"]["p50"] / 80.0)
        # Each run measures the frame of the server that would deploy it: NVIDIA's for bf16, moshi's otherwise.
        serving = run["config"]["serving"]
        assert serving == ("personaplex-server" if name in ("cpu-bf16-eager", "cpu-bf16-compile") else "moshi-server")
        assert set(m["stage_p50_ms"]) == set(STAGES_BY_SERVING[serving])
        assert m["prefill"]["steps"] == 13 + 6 + 20 + 6, "cpu-smoke's short persona before the call's first frame"
        assert m["peak_rss_bytes"] >= m["rss_after_load_bytes"] > 0
        assert m["load_s"] > 0 and m["first_step_s"] > 0
        assert run["exit_code"] == 0 and run["engine"]["lm_dtype"] in {"float32", "bfloat16", "float16"}
        # The planner's host-memory prediction against the measured peak RSS: recorded beside it (the figure itself
        # belongs in the closing note and benchmarks; a functional test only checks that it was compared).
        check = run["plan_check"]
        assert check["host_error"] is not None and math.isfinite(check["host_error"]), (name, check)
        assert 0 < check["roofline_fraction"] <= 1.0
        # ... and its step time, predicted from the frame the probe timed on this CPU (Mimi timed, LM priced)
        assert check["predicted_step_ms"] is not None and run["plan"]["step_parts"]["measured_ms"] > 0
        assert check["step_error"] is not None and math.isfinite(check["step_error"])

    _frame_cpu_is_recorded_per_frame(ok)
    engines = {n: r["engine"] for n, r in ok.items()}
    assert engines["cpu-bf16-int8-eager"]["quantized_linears"] > 50
    assert engines["cpu-bf16-offload-eager"]["offload_tier"] == "disk"
    assert engines["cpu-bf16-compile"]["compiled_frames"] >= 1
    assert "NO_TORCH_COMPILE" not in engines["cpu-bf16-compile"]["env"]
    assert engines["cpu-bf16-eager"]["env"]["NO_TORCH_COMPILE"] == "1"
    assert all(e["env"]["NO_CUDA_GRAPH"] == "1" for e in engines.values())
    assert all(e["env"]["OMP_NUM_THREADS"] == "2" for e in engines.values()), "thread settings are recorded"
    assert all(e["cuda_graphs_captured"] == 0 and e["recompiles_measured"] == 0 for e in engines.values())

    verdict = results["verdict"]
    assert verdict["go"] is False and verdict["headline"].startswith("NO-GO")  # tiny model, 2 CPU cores
    assert any("p99" in reason for reason in verdict["reasons"])
    html = (out / "report.html").read_text()
    assert "NO-GO" in html and html.count("data:image/png;base64,") == 6  # with telemetry
    assert (out / "summary.md").read_text().startswith("## cpu-smoke: NO-GO")
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + len(runs)
    assert (out / "logs" / "cpu-bf16-eager.stderr.log").exists()
    assert "RTF" in done.stdout and "cpu-bf16-offload-eager" in done.stdout
    _job_json_re_runs_the_run(out)


def _frame_cpu_is_recorded_per_frame(ok: dict) -> None:
    """Each worker recorded, per measured frame, its main thread's CPU time (never above the wall time of the same
    interval), its threads' run-queue wait where Linux exposes it, and its own collections."""
    for name, run in ok.items():
        m = run["metrics"]
        cpu = m["frame_cpu"]
        assert len(cpu["cpu_ms"]) == len(cpu["process_cpu_ms"]) == len(cpu["gc_ms"]) == len(m["samples_ms"]), name
        assert all(0 < c <= w + 0.5 for c, w in zip(cpu["cpu_ms"], m["samples_ms"])), name
        if cpu["sources"]["run_wait"] == "schedstat":
            assert len(cpu["run_wait_ms"]) == len(m["samples_ms"]) and min(cpu["run_wait_ms"]) >= 0, name


def _job_json_re_runs_the_run(out: Path) -> None:
    """`.work/<run>/job.json` really re-runs the run: started from a shell without the run's environment, the
    worker re-executes itself with the job's (NO_TORCH_COMPILE=1 here), then measures as the session did."""
    job = out / ".work" / "cpu-bf16-eager" / "job.json"
    reply = Path(json.loads(job.read_text())["reply_path"])
    reply.unlink()
    env = {k: v for k, v in os.environ.items() if k not in {"NO_TORCH_COMPILE", "NO_CUDA_GRAPH", "OMP_NUM_THREADS"}}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "harness.worker", str(job)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "re-running with the job's environment" in done.stderr
    again = json.loads(reply.read_text())
    assert again["status"] == "ok" and again["engine"]["env"]["NO_TORCH_COMPILE"] == "1"
    assert len(again["samples"]["total_ms"]) == 4


@pytest.mark.skipif(cuda_available(), reason="shows the no-GPU behaviour; this machine has a GPU")
def test_gpu_scenario_on_a_machine_without_gpu_records_every_run(tmp_path: Path) -> None:
    done = run_cli("run", "scenarios/rtx5090.yaml", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    expected = [r.name for r in load_scenario(REPO / "scenarios" / "rtx5090.yaml").runs]
    assert [r["name"] for r in results["runs"]] == expected and len(expected) >= 6  # every run, none dropped
    for run in results["runs"]:
        assert run["status"] == "skipped" and run["reason"].startswith("CUDA is not available on this machine")
        assert run["worker_pid"] is None


def test_help_teaches_the_scenario_format() -> None:
    done = run_cli("run", "--help")
    assert done.returncode == 0
    for words in ("preset", "warmup_frames", "matrix", "cuda_graphs", "RTF", "exit status", "results.json"):
        assert words in done.stdout
    assert (REPO / "README.md").exists()
