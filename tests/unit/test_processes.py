"""Server processes per machine from real recorded runs (the smoke baseline's results.json): the prediction's
arithmetic, the judgement of K processes, and `processes: predict` naming itself predicted."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.records.capacity import CapacitySpec
from harness.records.store import load_session
from harness.session.processes import ProcessBatch, judge_processes, predict, process_capacity

SMOKE = Path(__file__).resolve().parents[2] / "benchmarks" / "smoke-baseline" / "results.json"


@pytest.fixture(scope="module")
def smoke():  # noqa: ANN201
    session = load_session(SMOKE)
    run = next(r for r in session.runs if r.name == "cpu-fp32-eager")
    return session, run


def test_prediction_from_one_process(smoke) -> None:  # noqa: ANN001
    session, run = smoke
    criteria = session.scenario.criteria
    by_memory, by_time, per, step, rule = predict(run.config, session, criteria, single=run, deadline_ms=1000.0,
                                                  torch_threads=1)
    m = run.metrics
    assert per == m.peak_rss_bytes and step == m.ms_per_step.p99
    assert by_memory == int(session.machine.ram_total_bytes * (1 - criteria.memory_headroom) // m.peak_rss_bytes)
    assert by_time == 2 * int(1000.0 // m.ms_per_step.p99)  # 2 cores, 1 thread per process: 2 side by side
    assert rule.startswith("predicted, not measured") and "2 cores / 1 thread(s) per process" in rule
    # Nothing measured, nothing predicted: said so.
    assert predict(run.config, session, criteria, single=None, deadline_ms=1000.0, torch_threads=1)[0] is None


def test_k_processes_are_judged_together(smoke) -> None:  # noqa: ANN001
    session, run = smoke
    criteria = session.scenario.criteria
    probe = judge_processes(ProcessBatch(results=[run, run], together=True), 2, session, criteria)
    assert probe.ran and probe.frames == run.metrics.frames and probe.step_p99_ms == run.metrics.ms_per_step.p99
    assert probe.verdict == ("realtime" if run.metrics.ms_per_step.p99 <= criteria.deadline_ms(80.0) else "late")
    failed = run.model_copy(update={"status": "failed", "metrics": None, "reason": "worker killed"})
    lost = judge_processes(ProcessBatch(results=[run, failed], together=False), 2, session, criteria)
    assert lost.verdict == "failed" and "worker killed" in lost.reasons[0] and not lost.together
    short = judge_processes(ProcessBatch(results=[run], together=True), 2, session, criteria)
    assert short.verdict == "failed"  # a process that never came back is not a pass


def test_predict_mode_runs_nothing(smoke) -> None:  # noqa: ANN001
    session, run = smoke

    class NoRuns:
        def processes(self, run, count):  # noqa: ANN001, ANN202
            raise AssertionError("processes: predict must not start workers")

    out = process_capacity(NoRuns(), run.config, session, session.scenario.criteria,
                           spec=CapacitySpec(processes="predict", max_sessions=64), single=run, deadline_ms=1000.0,
                           torch_threads=1, note=lambda _: None)
    assert out is not None and out.how == "predicted" and not out.probes
    assert out.max_realtime_processes == min(out.predicted_by_memory, out.predicted_by_time, 64)
    assert out.judged_by.startswith("predicted, not measured")
    assert process_capacity(NoRuns(), run.config, session, session.scenario.criteria,
                            spec=CapacitySpec(processes="off"), single=run, deadline_ms=1000.0, torch_threads=1,
                            note=lambda _: None) is None
