"""Capacity search with real workers on the CPU (personaplex-tiny, a relaxed 1000 ms budget, few ticks)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner

SCENARIO = """
    name: capacity
    preset: personaplex-tiny
    warmup_frames: 3
    frame_budget_ms: 1000
    torch_threads: 1
    telemetry_hz: 0
    timeout_s: 600
    persona: off                # the per-call prefill is measured by the serving tests; here the ticks count
    defaults: {{device: cpu, dtype: bfloat16, serving: model}}
    {extra}
    runs:
      - name: tiny-cap
        capacity: {{max_sessions: 6, gpu_hour_usd: 0.5, join: {{warmup_steps: 2}}}}
    """


def test_capacity_search_finds_sessions_and_the_failing_next_size(tmp_path: Path, write_scenario) -> None:
    loaded = load_scenario(write_scenario(SCENARIO.format(extra="")))
    session = ScenarioRunner(loaded, tmp_path, RunOptions(frames=6), Console(file=io.StringIO())).run(loaded.runs)
    run = session.runs[0]
    assert run.status == "ok" and run.metrics is not None and run.metrics.capacity is not None, run.reason
    cap = run.metrics.capacity
    sizes = [p.sessions for p in cap.probes]
    best = cap.max_realtime_sessions
    one = next(p for p in cap.probes if p.sessions == 1)
    # No wall-clock threshold: when one session's tick p99 is under half the deadline, two in one batched tick
    # (which amortises the step) fit; on a machine so loaded that one session takes more, the search must still
    # be well formed (below), however few sessions it finds.
    if one.tick_p99_ms < cap.deadline_ms / 2:
        assert best >= 2
    assert run.config.batch_size == max(best, 1) and run.metrics.frames == 6
    assert all(p.ran for p in cap.probes)  # nothing near the memory bound of this machine
    if cap.limited_by == "time":  # the next size was measured and missed the deadline
        failing = next(p for p in cap.probes if p.sessions == best + 1)
        assert failing.verdict == "late" and failing.reasons and failing.ticks == 6
    else:  # every size up to max_sessions stayed real time
        assert cap.limited_by == "max_sessions" and best == 6
    assert (sizes[:2] == [1, 2] or sizes == [1]) and cap.deadline_ms == 900.0
    passing = [p for p in cap.probes if p.verdict == "realtime"]
    # 6 ticks certify nothing: each real-time probe says how many ticks would.
    assert all(not p.certified and "459 ticks" in p.notes[0] for p in passing)
    assert all(p.admission is not None and len(p.admission.tick_ms) == 1 for p in cap.probes if p.sessions >= 2)
    assert cap.cost is not None and cap.cost.sessions == best
    assert best == 0 or cap.cost.per_conversation_hour_usd == 0.5 / best
    assert cap.predicted_gpus and any("H100" in g.gpu for g in cap.predicted_gpus)
    # Memory per added session, measured (peak RSS slope) against the planner's prediction, within 10%.
    assert cap.predicted_memory_per_session_bytes
    if len([p for p in cap.probes if p.ran and p.sessions >= 2]) < 2:
        return  # one batched size ran (a very loaded machine): no slope to compare
    assert cap.memory_per_session_bytes
    error = cap.predicted_memory_per_session_bytes / cap.memory_per_session_bytes - 1
    assert abs(error) <= 0.10, (cap.memory_per_session_bytes, cap.predicted_memory_per_session_bytes)
    html = (tmp_path / "report.html").read_text()
    assert "Capacity: tiny-cap" in html and "Predicted, not measured" in html and "per conversation-hour" in html


def test_a_size_the_planner_says_cannot_fit_is_not_run(tmp_path: Path, write_scenario) -> None:
    loaded = load_scenario(write_scenario(SCENARIO.format(extra="host_memory_limit_gib: 0.9")))
    session = ScenarioRunner(loaded, tmp_path, RunOptions(frames=6), Console(file=io.StringIO())).run(loaded.runs)
    run = session.runs[0]
    assert run.status == "skipped" and "do not fit in memory" in run.reason, run.reason
    assert not list((tmp_path / ".work").glob("tiny-cap*")) and not (tmp_path / "logs").exists()
