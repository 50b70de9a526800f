"""GPU-only paths, on the real APIs: CUDA events, allocator peaks, CUDA graphs, NVML telemetry, CPU-tier offload.

Marked `gpu`: skipped with the reason on machines where torch.cuda.is_available() is False.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner
from tests.conftest import run_cli

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

SCENARIO = """
name: gpu-tiny
preset: personaplex-tiny
frames: 40
warmup_frames: 5
telemetry_hz: 20
criteria: {min_frames: 1, min_seconds: 0}
defaults:
  device: cuda
  dtype: bfloat16
  serving: model              # the core's three stages; server frames are measured by test_serving
runs:
  - cuda_graphs: on
  - cuda_graphs: off
  - {offload: cpu, offload_fraction: 0.5}
"""


def test_cuda_runs_measure_events_memory_and_telemetry(tmp_path: Path, write_scenario) -> None:
    loaded = load_scenario(write_scenario(SCENARIO))
    session = ScenarioRunner(loaded, tmp_path, RunOptions(), Console(file=io.StringIO())).run(loaded.runs)
    for run in session.runs:
        assert run.status == "ok", (run.name, run.reason, run.stderr_tail)
        m = run.metrics
        assert m is not None and m.cuda is not None
        assert m.cuda.peak_allocated_bytes > 0 and m.cuda.total_bytes > m.cuda.peak_reserved_bytes
        assert set(m.cuda.stage_p50_ms) == {"encode", "lm_step", "decode"}
        # One synchronisation per frame: the GPU's stage spans (CUDA events) fit inside the frame's wall time.
        gpu_span = sum(m.cuda.stage_p50_ms.values())
        assert 0 < gpu_span <= m.ms_per_step.p50 * 1.10, (m.cuda.stage_p50_ms, m.ms_per_step.p50)
        # The driver's view of the device includes the allocator's reservation and the CUDA context.
        assert m.cuda.device_used_bytes is not None and m.cuda.device_used_bytes > m.cuda.peak_reserved_bytes
        assert m.telemetry is not None and m.telemetry.sources["gpu"] == "available"
        assert any(v is not None for v in m.telemetry.gpu_temp_c)
        assert m.telemetry_summary is not None and m.telemetry_summary.gpu_temp_max_c is not None
    graphs, eager = session.runs[0], session.runs[1]
    assert graphs.engine is not None and graphs.engine.cuda_graphs_captured > 0, "graphs observed, not assumed"
    assert eager.engine is not None and eager.engine.cuda_graphs_captured == 0
    offload = session.runs[2]
    assert offload.engine is not None and offload.engine.offload_tier == "cpu"
    assert session.verdict is not None


def test_int8_with_cuda_graphs(tmp_path: Path, write_scenario) -> None:
    """Its own test: bitsandbytes (61 MB) travels to a lent GPU machine in its own call (scripts/gpu-check --int8)."""
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed here (the int8 wheel set brings it)")
    text = SCENARIO.split("runs:")[0] + "runs:\n  - {quantize: int8, cuda_graphs: on}\n"
    loaded = load_scenario(write_scenario(text))
    session = ScenarioRunner(loaded, tmp_path, RunOptions(), Console(file=io.StringIO())).run(loaded.runs)
    run = session.runs[0]
    assert run.status == "ok", (run.name, run.reason, run.stderr_tail)
    assert run.engine is not None and run.engine.quantized_linears > 50
    assert run.metrics is not None and run.metrics.cuda is not None and run.metrics.cuda.peak_allocated_bytes > 0


@pytest.mark.real_probe  # checks the probe itself: its worker runs
def test_probe_on_a_gpu_machine() -> None:
    report = json.loads(run_cli("probe", "--json").stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["cuda"]["status"] == "pass" and checks["nvml"]["status"] == "pass"
    assert checks["cuda_arch"]["status"] in {"pass", "fail"}
    assert checks["device_bandwidth"]["value"] > 10
    assert report["machine"]["gpus"][0]["memory_total_bytes"] > 2**30


def test_plan_here_sees_the_gpu() -> None:
    done = run_cli("plan", "scenarios/h100.yaml", "--here", "--json")
    assert done.returncode in {0, 1}
    plans = json.loads(done.stdout)["plans"]
    assert all(p["device_capacity_bytes"] for p in plans)


def test_the_prefill_synchronises_once_not_per_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """NVIDIA's prefill never waits for the GPU between steps, so its kernels overlap the 10 ms waits: the emulation
    records CUDA events per step and synchronises once, at the end."""
    import torch

    from harness.contract.wire import PersonaJob, WorkerRun
    from harness.worker.engine.build import build_models
    from harness.worker.pipeline.prefill import run_prefill

    built = build_models(WorkerRun(name="p", device="cuda", dtype="bfloat16"), "personaplex-tiny", None, 0, tmp_path)
    job = PersonaJob(voice_prompt_frames=4, text_prompt_tokens=6, silence_frames=2, server_wait_ms=10.0)
    syncs = []
    real = torch.cuda.synchronize
    with torch.no_grad(), built.mimi.streaming(1), built.lm_gen.streaming(1):
        def counted(*args: object, **kwargs: object) -> None:
            if sys._getframe(1).f_code.co_filename.endswith("prefill.py"):  # the harness's, not moshi's graph capture
                syncs.append(1)
            real(*args, **kwargs)

        monkeypatch.setattr(torch.cuda, "synchronize", counted)
        samples = run_prefill(job, built.mimi, built.lm_gen, built.device, 1, 0)
    assert len(syncs) == 1 and len(samples.step_ms) == 4 + 4 + 6
    assert all(ms > 0 for ms in samples.step_ms) and samples.seconds >= samples.wait_s > 0
