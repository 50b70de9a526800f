"""Regression verdicts on fabricated sessions: autocorrelated noise is not a regression, a 2x slowdown is."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Optional

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from harness.compare.regression import (
    EXIT_INCONCLUSIVE,
    EXIT_NO_BASELINE,
    EXIT_NOT_COMPARABLE,
    EXIT_REGRESSION,
    RunComparison,
    ThresholdError,
    compare_sessions,
    default_thresholds,
    parse_threshold,
)
from harness.compare.render import markdown
from harness.contract.wire import GpuInfo
from harness.records.config import RunConfig
from harness.records.machine import Machine
from harness.records.scenario import RunDefaults
from harness.records.schema import ProcessRun, RunMetrics, RunResult, Session
from harness.stats.percentiles import summarize

T = default_thresholds()
SCENARIO = {"name": "s", "preset": "personaplex-tiny", "frames": 300, "warmup_frames": 5, "batch_size": 1,
            "torch_threads": 2, "frame_budget_ms": 80.0, "pace": "fast", "duration": None}


def ar1(mean: float, n: int, seed: int, phi: float = 0.8, cv: float = 0.10) -> list[float]:
    """Step times whose log follows an AR(1): slow stretches last, as on a shared machine."""
    rng = np.random.default_rng(seed)
    e, out = 0.0, []
    for z in rng.normal(size=n):
        e = phi * e + cv * math.sqrt(1 - phi * phi) * z
        out.append(mean * math.exp(e))
    return out


def machine(torch: str = "2.9.1", gpu: Optional[str] = "NVIDIA GeForce RTX 5090") -> Machine:
    gpus = [GpuInfo(index=0, name=gpu, memory_total_bytes=32 * 2**30)] if gpu else []
    return Machine(hostname="h", os="Linux", os_release="6", platform="p", cpu_model="AMD EPYC", cpu_cores_logical=16,
                   cpu_cores_physical=8, ram_total_bytes=64 * 2**30, python="3.11",
                   packages={"torch": torch, "moshi": "0.2.13"}, fingerprint=f"old-{torch}", gpus=gpus)


def metrics(samples: list[float], processes: Optional[list[int]] = None) -> RunMetrics:
    stats = summarize(samples)
    split = []
    if processes:
        start = 0
        for size in processes:
            part = samples[start:start + size]
            split.append(ProcessRun(pid=1000 + len(split), frames=size, p50_ms=float(np.median(part)),
                                    p99_ms=float(np.percentile(part, 99))))
            start += size
    return RunMetrics(frames=len(samples), warmup_frames=5, frame_budget_ms=80.0, ms_per_step=stats,
                      rtf=stats.p50 / 80, rtf_p99=stats.p99 / 80, stage_p50_ms={}, peak_rss_bytes=2**30,
                      rss_after_load_bytes=2**30, load_s=1.0, first_step_s=0.1, warmup_s=1.0, samples_ms=samples,
                      stage_samples_ms={}, processes=split)


def run(name: str, samples: Optional[list[float]], status: str = "ok", processes: Optional[list[int]] = None,
        **config: object) -> RunResult:
    cfg = RunConfig(name=name, **{**RunDefaults().model_dump(), "device": "cpu", **config})
    return RunResult(name=name, config=cfg, status=status, reason="" if samples else "for a reason",
                     metrics=metrics(samples, processes) if samples else None)


def session(runs: list[RunResult], later: int = 0, m: Optional[Machine] = None, **scenario: object) -> Session:
    when = datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(days=later)
    return Session(harness_version="0.1.0", created_at=when, updated_at=when, state="complete", command=[],
                   scenario_path="s.yaml", scenario={**SCENARIO, **scenario}, weights="synthetic",
                   machine=m or machine(), runs=runs)


def compare(base: list[float], cur: list[float], thresholds=T):  # noqa: ANN001, ANN201
    return compare_sessions(session([run("r", base)]), session([run("r", cur)], later=1), thresholds, 0.01, "a", "b")


def test_thresholds_parse_like_pytest_benchmark() -> None:
    assert str(parse_threshold("p50:5%")) == "p50:5%" and parse_threshold("p99:12.5%").fraction == 0.125
    for bad in ("p50", "p42:5%", "p50:5", "median:5%"):
        with pytest.raises(ThresholdError):
            parse_threshold(bad)


def test_autocorrelated_series_of_one_distribution_are_never_a_regression() -> None:
    """The bug of issue 8: frames of one process are autocorrelated. 20 pairs drawn from the same AR(1)
    process: Mann-Whitney U on the frames calls many of them significantly slower; the block bootstrap
    flags none."""
    naive, flagged = 0, []
    for seed in range(20):
        base, cur = ar1(50, 300, seed=2 * seed), ar1(50, 300, seed=2 * seed + 1)
        naive += mannwhitneyu(cur, base, alternative="greater").pvalue < 0.01
        result = compare(base, cur, [parse_threshold("p50:5%")])
        flagged += [seed] if result.runs[0].outcome == "regression" else []
    assert naive >= 4, "the fabricated series must be autocorrelated enough to fool a test on independent frames"
    assert flagged == []


def test_a_two_fold_slowdown_is_a_regression_and_faster_an_improvement() -> None:
    result = compare(ar1(50, 300, seed=1), ar1(100, 300, seed=2))
    r = result.runs[0]
    assert r.outcome == "regression" and result.exit_code == EXIT_REGRESSION
    p50 = r.statistics[0]
    assert p50.verdict == "slower" and p50.low is not None and p50.low > 0.10
    assert p50.low < r.change["p50"] < p50.high and "block bootstrap" in p50.method
    assert "one process per side" in r.note
    faster = compare(ar1(100, 300, seed=3), ar1(50, 300, seed=4))
    assert faster.runs[0].outcome == "improvement" and faster.exit_code == 0


def test_noise_above_the_threshold_is_inconclusive_not_a_guess() -> None:
    # 100 autocorrelated frames with 10% noise hold about 11 independent ones: 2% cannot be resolved.
    result = compare(ar1(50, 100, seed=5), ar1(51, 100, seed=6), [parse_threshold("p50:2%")])
    r = result.runs[0]
    assert r.outcome == "inconclusive" and result.exit_code == EXIT_INCONCLUSIVE
    assert "p50 inconclusive: noise" in r.note and "> threshold 2%" in r.note
    assert result.headline == "INCONCLUSIVE"


def test_small_but_certain_change_below_the_threshold_is_unchanged() -> None:
    result = compare([50.0 + (i % 5) * 0.1 for i in range(500)], [51.0 + (i % 5) * 0.1 for i in range(500)])
    assert result.runs[0].outcome == "unchanged" and result.exit_code == 0


def _processes(means: list[float], frames: int, seed: int) -> list[float]:
    return [v for i, m in enumerate(means) for v in ar1(m, frames, seed=seed * 10 + i, phi=0.5, cv=0.05)]


def test_three_or_more_processes_compare_process_medians() -> None:
    base = session([run("r", _processes([50, 52, 49, 51], 120, 1), processes=[120] * 4)])
    same = session([run("r", _processes([51, 49, 50, 52], 120, 2), processes=[120] * 4)], later=1)
    slow = session([run("r", _processes([100, 104, 98, 101], 120, 3), processes=[120] * 4)], later=1)
    unchanged = compare_sessions(base, same, T, 0.01, "a", "b").runs[0]
    assert unchanged.outcome == "unchanged" and unchanged.processes == (4, 4)
    p50 = unchanged.statistics[0]
    assert p50.method.startswith("process p50s, Welch t") and p50.spread is not None and p50.spread < 0.10
    regressed = compare_sessions(base, slow, T, 0.01, "a", "b").runs[0]
    assert regressed.outcome == "regression" and regressed.statistics[0].change == pytest.approx(1.0, abs=0.1)
    # p99 of 120 frames per process is not judged per process (needs 100 frames each: it is) ...
    assert regressed.statistics[1].method.startswith("process p99s")


def test_spread_between_processes_above_the_threshold_is_inconclusive() -> None:
    base = session([run("r", _processes([50, 60, 45], 100, 4), processes=[100] * 3)])
    cur = session([run("r", _processes([56, 47, 62], 100, 5), processes=[100] * 3)], later=1)
    r = compare_sessions(base, cur, [parse_threshold("p50:5%")], 0.01, "a", "b").runs[0]
    assert r.outcome == "inconclusive" and r.statistics[0].spread is not None and r.statistics[0].spread > 0.05
    assert "noise" in r.note and "threshold 5%" in r.note


def test_settings_that_change_a_frame_are_not_comparable() -> None:
    base = session([run("a", ar1(50, 300, 1)), run("b", ar1(50, 300, 2))])
    cur = session([run("a", ar1(50, 300, 3)), run("b", ar1(50, 300, 4), dtype="float16")], later=1,
                  batch_size=4, frames=200)
    result = compare_sessions(base, cur, T, 0.01, "a", "b")
    notes = {r.name: r.differences for r in result.runs}
    # frames change only the sample: not a refusal (issue 26), a warning beside the comparison
    assert notes["a"] == ["batch_size 1 -> 4"]
    assert notes["b"] == ["batch_size 1 -> 4", "dtype bfloat16 -> float16"]
    assert result.exit_code == EXIT_NOT_COMPARABLE and result.headline == "NOT COMPARABLE"
    assert result.runs[1].note.endswith("(--allow-difference batch_size --allow-difference dtype compares them "
                                        "anyway)"), "the refusal names the flag that overrides it"
    allowed = compare_sessions(base, cur, T, 0.01, "a", "b", allow_differences={"batch_size"})
    assert allowed.runs[0].outcome in {"unchanged", "inconclusive"} and allowed.runs[1].outcome == "not comparable"
    assert allowed.runs[0].sample_differences == ["frames 300 -> 200"]
    assert allowed.runs[0].note.startswith("another sample (frames 300 -> 200)")
    assert any("batch_size may differ" in w for w in allowed.warnings)
    other_weights = session([run("a", ar1(50, 300, 3))], later=1)
    other_weights.weights = "/models/model.safetensors"
    assert compare_sessions(base, other_weights, T, 0.01, "a", "b").runs[0].differences == [
        "weights synthetic -> /models/model.safetensors"]


def test_missing_baseline_failed_skipped_and_gone_runs() -> None:
    base = session([run("a", ar1(50, 300, 1)), run("b", ar1(50, 300, 2)), run("g", None, status="skipped"),
                    run("old", None, status="failed")])
    cur = session([run("a", None, status="failed"), run("g", None, status="skipped"), run("new", ar1(50, 300, 3)),
                   run("old", ar1(50, 300, 4))], later=1)
    result = compare_sessions(base, cur, T, 0.01, "base", "cur")
    outcomes = {r.name: r.outcome for r in result.runs}
    assert outcomes == {"a": "failed", "b": "missing", "g": "skipped", "old": "no baseline", "new": "no baseline"}
    assert result.exit_code == EXIT_REGRESSION, "a run that measured before and fails now outranks the rest"
    only_new = compare_sessions(session([]), session([run("new", ar1(50, 300, 3))], later=1), T, 0.01, "a", "b")
    assert only_new.exit_code == EXIT_NO_BASELINE and only_new.headline == "NO BASELINE"
    text = markdown(result)
    assert text.startswith("## Performance: REGRESSION") and "| new | **no baseline** |" in text


def test_other_hardware_is_refused_unless_allowed_and_software_changes_are_shown() -> None:
    base = session([run("a", ar1(50, 300, 1))])
    bumped = session([run("a", ar1(50, 300, 2))], later=1, m=machine(torch="2.10.0"))
    same_hw = compare_sessions(base, bumped, T, 0.01, "a", "b")
    assert same_hw.same_hardware and same_hw.software_changes == ["torch 2.9.1 -> 2.10.0"]
    assert "software changed: torch 2.9.1 -> 2.10.0" in markdown(same_hw)
    other = session([run("a", ar1(50, 300, 2))], later=1, m=machine(gpu="NVIDIA H100 80GB HBM3"))
    refused = compare_sessions(base, other, T, 0.01, "a", "b")
    assert refused.exit_code == EXIT_NOT_COMPARABLE and refused.runs == []
    assert "GPUs NVIDIA GeForce RTX 5090 (32 GiB) -> NVIDIA H100 80GB HBM3 (32 GiB)" in refused.refused
    allowed = compare_sessions(base, other, T, 0.01, "a", "b", allow_other_machine=True)
    assert allowed.runs[0].outcome != "not comparable" and "different hardware" in allowed.warnings[0]


def test_a_tail_percentile_needs_frames_beyond_it_or_processes() -> None:
    """A resample never holds a frame slower than the slowest measured: p99 of 300 frames of one process is
    not judged (a real same-vs-same pair on the shared VM was called +71% [+40%, +92%] before this rule)."""
    r = compare(ar1(50, 300, seed=7), ar1(50, 300, seed=8)).runs[0]
    p99 = r.statistics[1]
    assert p99.verdict == "not judged" and "needs 1000, 10 beyond it" in p99.note and "repeat: 3" in p99.note
    long = compare(ar1(50, 1200, seed=7), ar1(100, 1200, seed=8)).runs[0]
    assert long.statistics[1].verdict == "slower"
    asked = compare(ar1(50, 300, seed=7), ar1(500, 300, seed=8), [parse_threshold("max:50%")])
    top = asked.runs[0]  # a 10x slowdown the asked-for statistic cannot judge is "not judged", never "unchanged"
    assert top.statistics[0].verdict == "not judged" and top.outcome == "not judged" and asked.exit_code == 7


def test_a_slowdown_that_came_with_other_load_is_not_called_a_regression() -> None:
    from harness.records.schema import EngineInfo
    from harness.records.telemetry import TelemetrySummary

    def loaded(samples: list[float], host: float, threads: int = 4) -> RunResult:
        r = run("r", samples)
        assert r.metrics is not None
        r.metrics.telemetry_summary = TelemetrySummary(samples=100, cpu_percent_mean=host)
        r.engine = EngineInfo(torch_version="2.9.1", moshi_version="0.2.13", device="cpu", device_name="cpu",
                              torch_threads=threads, lm_dtype="bfloat16", mimi_dtype="bfloat16", weights="synthetic",
                              lm_parameters=1, mimi_parameters=1)
        return r

    def outcome(base: RunResult, cur: RunResult, pace: str = "fast") -> RunComparison:
        return compare_sessions(session([base], pace=pace), session([cur], later=1, pace=pace), T, 0.01, "a",
                                "b").runs[0]

    base, slow = ar1(50, 300, seed=1), ar1(100, 300, seed=2)
    # 4 threads of 16 cores: 25% is the run's own share. 27% and 30%: nobody else; a real regression.
    assert outcome(loaded(base, 27.0), loaded(slow, 30.0)).outcome == "regression"
    busier = outcome(loaded(base, 27.0), loaded(slow, 48.0))
    assert busier.outcome == "inconclusive" and "busier during the current run (host CPU 48% vs 27%)" in busier.note
    shared = outcome(loaded(base, 90.0), loaded(slow, 95.0))
    assert shared.outcome == "inconclusive" and "loaded the machine during the current run" in shared.note
    assert "its 4 thread(s) account for 25%" in shared.note
    # Load on the baseline only made the baseline slower: it can hide a slowdown, never fake one (issue 17).
    assert outcome(loaded(base, 90.0), loaded(slow, 30.0)).outcome == "regression"
    assert outcome(loaded(base, 27.0), loaded(slow, 95.0), pace="realtime").outcome == "regression", \
        "paced, a slower worker is busier by itself"


def test_processes_whose_samples_do_not_split_use_their_recorded_medians() -> None:
    base = run("r", _processes([50, 52, 49], 100, 6), processes=[100] * 3)
    cur = run("r", _processes([100, 103, 99], 100, 7), processes=[100] * 3)
    assert base.metrics is not None and cur.metrics is not None
    base.metrics.samples_ms = base.metrics.samples_ms[:250]  # e.g. a process's samples were not kept
    r = compare_sessions(session([base]), session([cur], later=1), T, 0.01, "a", "b").runs[0]
    assert r.outcome == "regression" and r.statistics[0].method.startswith("process p50s")
    assert r.statistics[0].change == pytest.approx(1.0, abs=0.05)


def _with_evidence(samples: list[float], stolen: list[float], others: Optional[list[float]] = None,
                   threads: int = 0, cores: int = 0) -> RunResult:
    """A run whose worker recorded its CPU time: `stolen` ms of each frame it could not run (waiting for a CPU),
    while other processes used `others` ms of CPU (by default as much: they had the CPU it waited for)."""
    from harness.records.schema import FrameCpuSamples

    r = run("r", samples)
    assert r.metrics is not None
    r.metrics.frame_cpu = FrameCpuSamples(cpu_ms=[w - s for w, s in zip(samples, stolen)], run_wait_ms=stolen,
                                          main_wait_ms=stolen, frame_wait_ms=stolen,
                                          others_cpu_ms=list(stolen) if others is None else others,
                                          threads=threads, cores=cores)
    return r


def test_compare_doubts_only_the_slowdown_that_measured_interference_can_explain() -> None:
    """Per-frame evidence, in proportion: a 2x slowdown during which a third of the frames lost half their time to
    other processes is still a regression; the same 2x when every frame lost half its time is not judged one."""
    base, slow = ar1(50, 300, seed=1), ar1(100, 300, seed=2)

    def outcome(b: RunResult, c: RunResult) -> RunComparison:
        return compare_sessions(session([b]), session([c], later=1), T, 0.01, "a", "b").runs[0]

    clean_base = _with_evidence(base, [0.0] * 300)
    partly = _with_evidence(slow, [v / 2 if i % 3 == 0 else 0.0 for i, v in enumerate(slow)])
    found = outcome(clean_base, partly)
    assert found.outcome == "regression", found.note
    assert "more than the interference measured during the current run explains" in found.note
    starved = _with_evidence(slow, [v / 2 for v in slow])
    doubted = outcome(clean_base, starved)
    assert doubted.outcome == "inconclusive" and "enough to explain a slowdown" in doubted.note
    # Interference during the baseline only: still a regression, and the note says why it does not matter.
    hidden = outcome(_with_evidence(base, [v / 2 for v in base]), _with_evidence(slow, [0.0] * 300))
    assert hidden.outcome == "regression" and "can only hide a slowdown" in hidden.note


def test_a_change_that_adds_threads_is_a_regression_not_interference() -> None:
    """Issue 26: a change that oversubscribes the cores with its own threads (+60% per frame, every frame waiting
    for a CPU while nothing else runs) was 'inconclusive' (exit 6) on its own waits; it is a regression."""
    base, slow = ar1(50, 300, seed=1), ar1(80, 300, seed=2)
    clean = _with_evidence(base, [0.0] * 300, threads=2, cores=2)
    own = _with_evidence(slow, [v * 0.375 for v in slow], others=[0.0] * 300, threads=8, cores=2)
    found = compare_sessions(session([clean]), session([own], later=1), T, 0.01, "a", "b")
    assert found.runs[0].outcome == "regression", found.runs[0].note
    assert found.exit_code == 1
    # The same waits while other processes had the CPU: that load can explain it, and compare says so.
    loaded = _with_evidence(slow, [v * 0.375 for v in slow], threads=2, cores=2)
    doubted = compare_sessions(session([clean]), session([loaded], later=1), T, 0.01, "a", "b")
    assert doubted.runs[0].outcome == "inconclusive" and doubted.exit_code == 6


def test_an_interrupted_run_is_not_measured_not_a_failure() -> None:
    """Stopping a session keeps the run in flight (interrupted, frames kept, never judged): compare does not call
    it a failure, and the same run failing still is one."""
    base = session([run("a", ar1(50, 300, 1)), run("b", ar1(50, 300, 2))])
    cur = session([run("a", None, status="interrupted"), run("b", None, status="failed")], later=1)
    by_name = {r.name: r for r in compare_sessions(base, cur, T, 0.01, "base", "cur").runs}
    assert by_name["a"].outcome == "not measured" and "interrupted" in by_name["a"].note
    assert by_name["b"].outcome == "failed"
