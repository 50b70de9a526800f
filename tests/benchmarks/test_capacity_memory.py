"""Benchmark (not a functional test): memory per added lockstep session, measured (slope of peak RSS over the
probes) against the planner's prediction, within 10%. A memory figure of a shared machine moves with what else
runs, so it lives here and in the report's capacity section, not in the functional suite."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner

SCENARIO = """
    name: capacity-memory
    preset: personaplex-tiny
    warmup_frames: 3
    frame_budget_ms: 5000
    torch_threads: 1
    telemetry_hz: 0
    timeout_s: 600
    persona: off
    criteria: {min_frames: 6, min_seconds: 0}
    defaults: {device: cpu, dtype: float32, serving: model}
    runs:
      - name: tiny-cap
        capacity: {max_sessions: 6, processes: off}
    """


def test_memory_per_session_matches_the_planner(benchmark, tmp_path: Path, write_scenario) -> None:  # noqa: ANN001
    """Run with `pytest tests/benchmarks --benchmark-only` (skipped by the default --benchmark-skip)."""
    loaded = load_scenario(write_scenario(SCENARIO))

    def search():  # noqa: ANN202
        return ScenarioRunner(loaded, tmp_path, RunOptions(frames=6), Console(file=io.StringIO())).run(loaded.runs)

    session = benchmark.pedantic(search, rounds=1, iterations=1)
    cap = session.runs[0].metrics.capacity
    assert len([p for p in cap.probes if p.ran and p.sessions >= 2]) >= 2, "needs two batched sizes for a slope"
    error = cap.predicted_memory_per_session_bytes / cap.memory_per_session_bytes - 1
    print(f"memory per session: measured {cap.memory_per_session_bytes / 2**20:.1f} MiB, "
          f"predicted {cap.predicted_memory_per_session_bytes / 2**20:.1f} MiB ({error:+.1%})")
    assert abs(error) <= 0.10, (cap.memory_per_session_bytes, cap.predicted_memory_per_session_bytes)
