"""`harness probe`, `harness plan` and their use in `harness run`, through the real CLI and workers."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner
from tests.conftest import cuda_available, run_cli

pytestmark = pytest.mark.slow


def test_probe_json_matches_the_os_and_explains_missing_gpus() -> None:
    done = run_cli("probe", "--json")
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    expected_exit = {"pass": 0, "warn": 1, "fail": 2}[report["worst"]]
    assert done.returncode == expected_exit
    for name in ("os", "python", "cpu", "ram", "disk", "host_bandwidth", "torch", "nvml", "driver", "cuda", "cuda_arch",
                 "gpu_memory", "triton", "bitsandbytes", "accelerate", "bf16", "device_bandwidth"):
        assert name in checks, name
    machine = report["machine"]
    assert machine["cpu_cores_logical"] == os.cpu_count()
    assert machine["ram_total_bytes"] == psutil.virtual_memory().total
    assert machine["baseline_rss_bytes"] > 100 * 2**20 and machine["host_bandwidth_gbs"] > 0.5
    for check in report["checks"]:
        assert check["status"] in {"pass", "warn", "fail", "n/a"} and check["finding"]
        if check["status"] in {"warn", "fail"}:
            assert check["remedy"], check
    if not cuda_available():
        for name in ("cuda", "cuda_arch", "device_bandwidth", "gpu_memory", "triton", "driver"):
            assert checks[name]["status"] in {"n/a", "fail"}, checks[name]
        assert machine["cuda_available"] is False and machine["cuda_unavailable_reason"]


def test_probe_table_for_people() -> None:
    done = run_cli("probe")
    assert "Traceback" not in done.stderr
    assert "bitsandbytes" in done.stdout and "worst:" in done.stdout


def test_plan_gtx1080ti_tells_the_story_before_anything_runs() -> None:
    done = run_cli("plan", "scenarios/gtx1080ti.yaml", "--json")
    assert done.returncode == 1, done.stderr  # no run of the seeds' scenario can work on that machine
    plans = {p["run"]: p for p in json.loads(done.stdout)["plans"]}
    assert not plans["cuda-bf16-eager-graphs"]["fits_memory"]
    assert not plans["cuda-fp16-eager-graphs"]["fits_memory"]
    assert any("Triton" in r for r in plans["cuda-bf16-compile-graphs"]["reasons"])
    fits = [p for p in json.loads(done.stdout)["alternatives"] if p["fits_memory"]]
    assert fits and all(p["device_peak_bytes"] <= 11 * 2**30 for p in fits)
    text = run_cli("plan", "scenarios/gtx1080ti.yaml").stdout
    assert "best configuration that fits in memory" in text and "NO_TORCH_COMPILE=1" in text


def test_plan_rtx5090_and_other_gpus() -> None:
    done = run_cli("plan", "scenarios/rtx5090.yaml", "--json")
    assert done.returncode == 0, done.stderr
    plans = json.loads(done.stdout)["plans"]
    assert all(p["fits_memory"] for p in plans) and all(p["device_capacity_bytes"] == 32 * 2**30 for p in plans)
    for plan in plans:  # issue 19: a predicted step with its band and parts beside the memory plan
        band = plan["predicted_step_ms"]
        assert band["low"] <= band["p50"] <= band["high"] and plan["step_parts"]["kernels"] > 1000
    graphs = next(p for p in plans if p["run"] == "cuda-bf16-eager-graphs")
    eager = next(p for p in plans if p["run"] == "cuda-bf16-eager")
    assert graphs["predicted_step_ms"]["p50"] < eager["predicted_step_ms"]["p50"]
    assert graphs["serving"]["server_processes"] >= 0 and graphs["serving"]["lockstep_sessions"] >= 1
    l4 = json.loads(run_cli("plan", "scenarios/rtx5090.yaml", "--gpu", "l4", "--json").stdout)
    assert "NVIDIA L4" in l4["target"]
    bad = run_cli("plan", "scenarios/rtx5090.yaml", "--gpu", "voodoo2")
    assert bad.returncode == 2 and "unknown GPU" in bad.stderr


def test_plan_exact_gpus_laptops_and_cards_not_in_the_table() -> None:
    l40s = json.loads(run_cli("plan", "scenarios/rtx5090.yaml", "--gpu", "NVIDIA L40S", "--json").stdout)
    # memory as the card reports it (ECC on): 46068 MiB, not the 48 GB it is sold as
    assert l40s["target"].startswith("NVIDIA L40S (46068 MiB as nvidia-smi reports") and l40s["bandwidth_gbs"] == 864
    assert all(p["device_capacity_bytes"] == 46068 * 2**20 for p in l40s["plans"])
    laptop = json.loads(run_cli("plan", "scenarios/rtx5090.yaml", "--gpu", "NVIDIA GeForce RTX 5090 Laptop GPU",
                                "--json").stdout)
    assert laptop["bandwidth_gbs"] == 896 and all(p["device_capacity_bytes"] == 24 * 2**30 for p in laptop["plans"])
    custom = run_cli("plan", "scenarios/rtx5090.yaml", "--gpu", "my card", "--vram", "10", "--bandwidth", "500",
                     "--cc", "6.1", "--json")
    assert custom.returncode == 1, custom.stderr  # nothing fits 10 GiB, and no sm_61 kernels in the pinned torch
    plans = json.loads(custom.stdout)["plans"]
    assert all(p["device_capacity_bytes"] == 10 * 2**30 for p in plans)
    assert any("whl/cu126" in i["remedy"] for p in plans for i in p["issues"])


def test_predicted_oom_is_skipped_and_forced_oom_is_diagnosed(tmp_path: Path, write_scenario) -> None:
    path = write_scenario("""
        name: oom
        preset: personaplex-tiny
        persona: off  # what these tests check does not need the persona prefill
        frames: 3
        warmup_frames: 2
        host_memory_limit_gib: 0.9
        runs:
          - device: cpu
        """)
    loaded = load_scenario(path)
    quiet = Console(file=io.StringIO())
    skipped = ScenarioRunner(loaded, tmp_path / "a", RunOptions(), quiet).run(loaded.runs).runs[0]
    assert skipped.status == "skipped" and skipped.reason.startswith("predicted not to work here: needs")
    assert skipped.plan is not None and not skipped.plan.feasible
    forced = ScenarioRunner(loaded, tmp_path / "b", RunOptions(force=True), quiet).run(loaded.runs).runs[0]
    assert forced.status == "failed" and forced.diagnosis is not None
    assert forced.diagnosis.kind == "oom", forced.diagnosis
    assert "DefaultCPUAllocator" in forced.reason


@pytest.mark.skipif(cuda_available(), reason="needs a machine without CUDA")
def test_cuda_run_forced_on_a_cpu_machine_is_diagnosed(tmp_path: Path) -> None:
    from harness.contract.wire import BenchJob, BenchReply, to_json
    from harness.launcher.environment import worker_env
    from harness.launcher.spawn import run_worker
    from harness.records.config import RunConfig
    from harness.records.scenario import RunDefaults
    from harness.records.schema import utc_now
    from harness.records.validate import parse_wire
    from harness.session.assemble import ProcessOutcome, from_workers
    from harness.session.run_rules import worker_run

    run = RunConfig(name="cuda", **{**RunDefaults().model_dump(), "device": "cuda"})
    job = BenchJob(run=worker_run(run), preset="personaplex-tiny", frames=2, warmup_frames=2, batch_size=1,
                   torch_threads=1, seed=0, scratch_dir=str(tmp_path), reply_path=str(tmp_path / "reply.json"))
    (tmp_path / "job.json").write_text(to_json(job))
    outcome = run_worker(tmp_path / "job.json", worker_env(run, 1), 120, tmp_path, "cuda", on_event=lambda e: None)
    reply = parse_wire(BenchReply, (tmp_path / "reply.json").read_text())
    result = from_workers(run, [ProcessOutcome(outcome, reply)], frame_budget_ms=80, warmup_frames=2, timeout_s=120,
                          started_at=utc_now())
    assert result.status == "failed" and result.diagnosis is not None and result.diagnosis.kind == "no_cuda"
    assert "device: cpu" in result.diagnosis.remedy


def test_plan_reads_in_100_columns_with_every_run_name_whole() -> None:
    """A pipe wraps at the width it is given (COLUMNS=100, no longer forced to 120); the default tables fit it and
    never cut a run's name; --wide adds where each predicted step goes."""
    import subprocess
    import sys

    from tests.conftest import REPO

    env = dict(os.environ, COLUMNS="100", PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get(
        "PYTHONPATH", "")) if p))
    done = subprocess.run([sys.executable, "-m", "harness", "plan", "scenarios/rtx5090.yaml", "--wide"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    names = [p["run"] for p in json.loads(run_cli("plan", "scenarios/rtx5090.yaml", "--json").stdout)["plans"]]
    for name in names:  # whole, on one line, in the step table (its rows start with the name)
        assert sum(1 for line in lines if line.split() and line.split()[0] == name) >= 3, name
    assert "where each predicted step goes" in done.stdout
