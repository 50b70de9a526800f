"""Kernel counting runs for real: a worker steps personaplex-tiny on the CPU and counts what one frame dispatches;
the committed table (harness/knowledge/kernel_counts.py) must be what it counts, and `harness plan --here`
predicts the CPU runs from this host's measured cost per op (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.knowledge.kernel_counts import COUNTS
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("kernels") / "counts.json"
    done = subprocess.run([sys.executable, "-m", "harness.worker.kernels", str(out), "--preset", "personaplex-tiny",
                           "--host-cost", "--threads", "1"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(Path(out).read_text())


def test_one_frame_is_counted_on_the_real_modules(counted: dict) -> None:
    reply = counted["counts"]["personaplex-tiny"]
    scopes = reply["scopes"]
    assert set(scopes) == {"mimi", "temporal_layer", "depformer_layer", "lm_other"}
    for scope in scopes.values():
        assert scope["ops"] >= scope["kernels"] > 0  # views and allocations dispatch but launch nothing
        assert scope["graphed_kernels"] <= scope["kernels"] and scope["compiled_kernels"] <= scope["kernels"]
    assert scopes["mimi"]["graph_calls"] == 4  # Mimi's encoder, its transformer, the decoder's transformer, decoder
    assert scopes["depformer_layer"]["kernels"] > scopes["temporal_layer"]["kernels"]  # 16 depformer steps
    assert reply["mimi_flops"] > 10**8 and reply["dep_q"] == 16
    host = counted["host"]
    assert host["host_op_us"] > 0 and host["ops_per_call"] > 100 and "float32" in host["matmul_gflops"]


def test_the_committed_table_is_what_the_worker_counts(counted: dict) -> None:
    reply = counted["counts"]["personaplex-tiny"]
    table = COUNTS["personaplex"]
    software = f"torch {reply['torch']}, moshi {reply['moshi']}"
    if software != table.software:
        pytest.skip(f"counted with {software}, the table with {table.software}: run scripts/count_kernels.py")
    for name, scope in reply["scopes"].items():
        assert getattr(table, name).__dict__ == scope, f"{name}: rerun scripts/count_kernels.py"
    assert table.mimi_flops == reply["mimi_flops"]


def test_plan_here_predicts_the_cpu_runs() -> None:
    done = run_cli("plan", "scenarios/cpu-smoke.yaml", "--here", "--json")
    assert done.returncode == 0, done.stderr
    plans = {p["run"]: p for p in json.loads(done.stdout)["plans"]}
    cpu = [p for p in plans.values() if p["device"] == "cpu"]
    assert cpu
    for plan in cpu:
        band, parts = plan["predicted_step_ms"], plan["step_parts"]
        assert band["low"] <= band["p50"] <= band["high"], plan["run"]
        assert parts["combine"].startswith("sum") and parts["host_op_us"] > 0 and parts["host_ops"] > 1000
        assert parts["measured_ms"] > 0 and "moshi-tiny frame" in parts["host_source"], "fitted on the frame timed here"
        assert plan["predicted_realtime"] in {"yes", "no", "uncertain"}
    fp16, fp32 = plans["cpu-fp16-eager"]["step_parts"], plans["cpu-fp32-eager"]["step_parts"]
    server = plans["cpu-bf16-eager"]["step_parts"]  # NVIDIA's server frame: a second Mimi, timed here too
    assert server["measured_ms"] == pytest.approx(2 * fp32["measured_ms"])
    assert fp16["flops"] == fp32["flops"]  # same frame; what each dtype's matmuls cost is this CPU's measurement
    text = run_cli("plan", "--calibration")
    flat = " ".join(text.stdout.split())  # rich wraps at the terminal's width
    assert text.returncode == 0 and "independent figures (validation, no source shared with a fit figure): median " \
        "absolute error" in flat
