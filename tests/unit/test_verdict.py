"""Validity, playback simulation and the GO / NO-GO decision: pure functions on known inputs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from harness.contract.wire import GpuInfo
from harness.records.config import RunConfig
from harness.records.machine import Machine
from harness.records.scenario import Criteria, RunDefaults
from harness.records.schema import CudaMetrics, RunMetrics, RunResult, Session
from harness.stats.percentiles import summarize
from harness.verdict.playback import playback, simulate
from harness.verdict.recommend import decide
from harness.verdict.validity import assess_validity, late_rate_upper_bound


def test_clopper_pearson_upper_bound() -> None:
    assert late_rate_upper_bound(0, 459, 0.99) == pytest.approx(0.01, rel=0.01)  # the rule of three, at 99%
    assert late_rate_upper_bound(0, 100, 0.99) == pytest.approx(1 - 0.01 ** (1 / 100))
    assert late_rate_upper_bound(10, 10, 0.99) == 1.0
    assert 0.05 < late_rate_upper_bound(5, 100, 0.99) < 0.15


def test_validity_flags_short_unstable_and_late() -> None:
    criteria = Criteria()
    steady = assess_validity([50.0] * 300, 80.0, criteria)
    assert steady.valid and steady.stable and steady.late_frames == 0 and steady.frames_to_certify == 4306
    short = assess_validity([50.0] * 20, 80.0, criteria)
    assert not short.enough_frames and not short.enough_seconds and not short.valid
    assert short.measured_s == pytest.approx(1.6), "seconds of audio (20 x 80 ms), not the sum of step times"
    shaky = assess_validity([20.0, 120.0] * 100, 80.0, criteria)
    assert shaky.deadline_ms == pytest.approx(72.0), "late means over the budget less the headroom"
    assert not shaky.stable and shaky.late_frames == 100 and shaky.frames_to_certify is None
    assert any("unstable" in n for n in shaky.notes)


def test_playback_spike_needs_a_buffer() -> None:
    steps = [50.0] * 10
    steps[5] = 150.0
    assert simulate(steps, 80.0, 0).underruns == 1
    assert simulate(steps, 80.0, 80).underruns == 1  # 100 ms late: an 80 ms buffer is not enough
    assert simulate(steps, 80.0, 160).underruns == 0
    result = playback(steps, 80.0)
    assert result.smallest_clean_buffer_ms == 160 and result.first_frame_latency_ms == 50
    slow = playback([90.0] * 50, 80.0)
    assert slow.smallest_clean_buffer_ms is None, "slower than real time underruns whatever the buffer"
    assert playback([60.0] * 50, 80.0).smallest_clean_buffer_ms == 0


def test_fast_steady_run_is_valid_and_certified() -> None:
    """30 ms steps over 4606 frames: 368.5 s of audio (the old rule summed step time and called a fast GPU's run
    'too short'), and no frame late certifies a late rate under 1% at 99% confidence for late frames in bursts of
    up to 10 (0.8 s of audio)."""
    validity = assess_validity([30.0] * 4606, 80.0, Criteria())
    assert validity.valid and validity.measured_s == pytest.approx(368.48)
    assert validity.burst_frames == 10 and validity.burst_seconds == pytest.approx(0.8)
    assert validity.certified and validity.late_rate_upper < 0.01 and validity.frames_to_certify == 0


def test_late_frames_are_judged_against_the_deadline_not_the_budget() -> None:
    """A frame at 75 ms of an 80 ms budget is late with 10% headroom: one definition everywhere."""
    validity = assess_validity([50.0] * 495 + [75.0] * 5, 80.0, Criteria())
    assert validity.late_frames == 5 and not validity.certified


def test_playback_buffers_scale_with_the_budget() -> None:
    """At a 1000 ms budget the buffers tried are 0, 0.5, 1, 2 and 4 seconds, and a 179 ms step that once takes
    259 ms does not underrun a one-frame buffer (it did with a fixed 80 ms one)."""
    steps = [179.0] * 50
    steps[20] = 259.0
    result = playback(steps, 1000.0)
    assert [o.buffer_ms for o in result.outcomes] == [0.0, 500.0, 1000.0, 2000.0, 4000.0]
    assert result.at(1000.0) is not None and result.at(1000.0).underruns == 0


def test_relaxed_budget_run_is_go_and_says_what_ran() -> None:
    jittery = [179.0 + (i % 9) * 10 for i in range(1000)]
    jittery[40] = 259.0
    run = _run("cpu-fp32-eager", jittery, budget=1000.0, device="cpu")
    session = _session([run], preset="personaplex-tiny")
    verdict = decide(session, Criteria(min_seconds=20, late_frame_target=0.05))
    assert verdict.go, verdict.reasons
    assert "personaplex-tiny (a scaled preset, not PersonaPlex-7B) with synthetic weights" in verdict.headline
    assert "per 1000 ms frame" in verdict.reasons[0]


def test_too_few_clean_frames_is_inconclusive_not_no_go() -> None:
    """300 clean frames meet the p99 rule, but bound the late rate only at 15% for bursts of 10: not GO with the
    default 1% target, and not NO-GO either: INCONCLUSIVE, with the frames and the command that settle it."""
    verdict = decide(_session([_run("eager", [45.0] * 300)]), Criteria())
    assert not verdict.go and verdict.decision == "INCONCLUSIVE"
    assert verdict.headline.startswith("INCONCLUSIVE:")
    (a,) = verdict.assessments
    assert a.outcome == "not enough evidence" and a.frames_needed == 4606
    assert a.settle == "harness run s --only eager --frames 4606"
    assert "not certified yet" in verdict.reasons[0] and "4606 frames in one run settle it" in verdict.reasons[0]
    assert a.settle in verdict.headline


def test_a_clean_500_frame_run_is_inconclusive_and_4606_frames_are_go() -> None:
    """The flagship scenarios used to set frames: 500, which can never certify 1% at 99% for bursts of 10."""
    assert decide(_session([_run("graphs", [40.0] * 500)]), Criteria()).decision == "INCONCLUSIVE"
    assert decide(_session([_run("graphs", [40.0] * 4606)]), Criteria()).decision == "GO"


def test_a_rare_isolated_hiccup_certifies_at_twice_the_clean_length() -> None:
    """13 isolated 75 ms frames in 13,770 (0.09%, a tenth of the 1% target): the block rule it replaced read NO-GO
    ("more frames cannot certify it"); now GO."""
    samples = [40.0] * 13_770
    for i in range(13):
        samples[500 + i * 1000] = 75.0
    verdict = decide(_session([_run("graphs", samples)]), Criteria())
    assert verdict.decision == "GO", verdict.reasons
    assert "13 late" in verdict.reasons[1] and "0.8 s of audio" in verdict.reasons[1]


def test_a_late_share_shown_above_the_target_is_no_go() -> None:
    """3% of frames late in isolated spikes: p99 is under the deadline, but the late share is shown above 1%."""
    samples = [40.0] * 5000
    for i in range(0, 5000, 33):
        samples[i] = 75.0
    verdict = decide(_session([_run("graphs", samples)]), Criteria())
    (a,) = verdict.assessments
    assert verdict.decision == "NO-GO" and a.outcome == "not real time"
    assert any("shown above the 1% allowed" in r or "p99" in r for r in a.reasons)


def _metrics(samples: list[float], cuda: bool = False, budget: float = 80.0) -> RunMetrics:
    stats = summarize(samples)
    return RunMetrics(frames=len(samples), warmup_frames=10, frame_budget_ms=budget, ms_per_step=stats,
                      rtf=stats.p50 / budget, rtf_p99=stats.p99 / budget,
                      stage_p50_ms={"encode": 5.0, "lm_step": stats.p50 - 10, "decode": 5.0},
                      peak_rss_bytes=2 * 2**30, rss_after_load_bytes=2**30, load_s=1.0, first_step_s=0.1,
                      warmup_s=1.0, samples_ms=samples, stage_samples_ms={},
                      cuda=CudaMetrics(device_name="GPU", peak_allocated_bytes=20 * 2**30,
                                       peak_reserved_bytes=22 * 2**30, total_bytes=32 * 2**30) if cuda else None)


def _session(runs: list[RunResult], preset: str = "personaplex-7b") -> Session:
    now = datetime.now(timezone.utc)
    machine = Machine(hostname="h", os="Linux", os_release="6", platform="p", cpu_model="cpu", cpu_cores_logical=16,
                      cpu_cores_physical=8, ram_total_bytes=64 * 2**30, python="3.11", packages={}, fingerprint="f",
                      gpus=[GpuInfo(index=0, name="NVIDIA GeForce RTX 5090")], cuda_available=True)
    return Session(harness_version="0", created_at=now, updated_at=now, state="complete", command=[],
                   scenario_path="s", scenario={"name": "s", "preset": preset}, weights="synthetic", machine=machine,
                   runs=runs)


def _run(name: str, samples: list[float] | None, status: str = "ok", budget: float = 80.0, **config) -> RunResult:
    cfg = RunConfig(name=name, **{**RunDefaults().model_dump(), "device": "cuda", **config})
    return RunResult(name=name, config=cfg, status=status, reason="" if samples else "skipped for a reason",
                     metrics=_metrics(samples, cuda=cfg.device.value == "cuda", budget=budget) if samples else None)


def test_go_picks_the_fastest_real_time_run_with_settings() -> None:
    session = _session([
        _run("graphs", [30.0 + (i % 7) for i in range(4606)], compile=True, cuda_graphs=True),
        _run("eager", [45.0 + (i % 5) for i in range(4606)]),
        _run("slow", [95.0] * 300, dtype="float16"),
        _run("skipped", None, status="skipped"),
    ])
    verdict = decide(session, Criteria())
    assert verdict.go and verdict.ranked == ["graphs", "eager"]
    assert "runs PersonaPlex-7B with synthetic weights in real time" in verdict.headline
    rec = verdict.recommended
    assert rec is not None and rec.run == "graphs" and rec.env == {}
    assert rec.settings["torch.compile"] == "on" and rec.settings["CUDA graphs"] == "on"
    eager = decide(_session([_run("eager", [45.0] * 4606)]), Criteria()).recommended
    assert eager is not None and eager.env == {"NO_TORCH_COMPILE": "1", "NO_CUDA_GRAPH": "1"}


def test_no_go_explains_each_run() -> None:
    spiky = [40.0] * 300
    spiky[100] = 400.0  # one long stall: p99 fine, but the playback underruns
    session = _session([_run("slow", [95.0] * 300), _run("spiky", spiky), _run("short", [40.0] * 20),
                        _run("gone", None, status="failed")])
    verdict = decide(session, Criteria())
    assert not verdict.go and verdict.recommended is None
    # Two runs miss, one may be real time but is far too short to tell: not enough evidence is not NO-GO.
    assert verdict.decision == "INCONCLUSIVE" and "best candidate short" in verdict.headline
    text = "\n".join(verdict.reasons)
    assert "slow: not real time: p99 95.0 ms > 72 ms deadline" in text
    assert "spiky: not real time: 1 underruns with a 80 ms jitter buffer" in text
    assert "short: not enough evidence: only 20 measured frames" in text
    assert "1 other run(s) did not measure: gone" in text
    outcomes = {a.name: a.outcome for a in verdict.assessments}
    assert outcomes == {"slow": "not real time", "spiky": "not real time", "short": "not enough evidence",
                        "gone": "failed"}
    no_go = decide(_session([_run("slow", [95.0] * 300), _run("spiky", spiky)]), Criteria())
    assert no_go.decision == "NO-GO" and no_go.headline.startswith("NO-GO: no configuration runs")


def test_memory_headroom_is_required() -> None:
    run = _run("tight", [40.0] * 500)
    assert run.metrics is not None and run.metrics.cuda is not None
    run.metrics.cuda.peak_reserved_bytes = int(31 * 2**30)
    verdict = decide(_session([run]), Criteria())
    assert not verdict.go and "97% of GPU memory" in verdict.reasons[0]


def _blackwell(session: Session) -> Session:
    session.machine.gpus[0].compute_capability = "12.0"
    return session


def test_go_ranks_only_runs_of_the_same_frame() -> None:
    """fp16 measured with moshi's server frame is faster than bf16 with NVIDIA's, but the two frames do different
    work: they are ranked apart, and the preset's own server (NVIDIA's, for PersonaPlex) is recommended."""
    session = _session([
        _run("bf16", [50.0 + (i % 5) for i in range(4606)], serving="personaplex-server"),
        _run("bf16-graphs", [40.0 + (i % 5) for i in range(4606)], serving="personaplex-server", cuda_graphs=True),
        _run("fp16", [30.0 + (i % 5) for i in range(4606)], dtype="float16", serving="moshi-server"),
        _run("core", [20.0] * 4606, serving="model"),
    ])
    verdict = decide(session, Criteria())
    assert verdict.go and verdict.ranked == ["bf16-graphs", "bf16"]
    assert [(r.serving, r.runs) for r in verdict.rankings] == [
        ("personaplex-server", ["bf16-graphs", "bf16"]), ("moshi-server", ["fp16"]), ("model", ["core"])]
    assert verdict.recommended is not None and verdict.recommended.frame == "PersonaPlex server frame"
    apart = [r for r in verdict.reasons if "moshi server frame" in r]
    assert apart and "fp16" in apart[0] and "not ranked against" in apart[0]


def test_on_sm_120_the_recommendation_names_a_server_with_kernels() -> None:
    """NVIDIA's server pins torch<2.5: no wheel of that range has sm_120 kernels. moshi's server frame wins."""
    session = _blackwell(_session([
        _run("bf16", [30.0 + (i % 5) for i in range(4606)], serving="personaplex-server"),
        _run("fp16", [45.0 + (i % 5) for i in range(4606)], dtype="float16", serving="moshi-server"),
    ]))
    verdict = decide(session, Criteria())
    assert verdict.go and verdict.recommended is not None and verdict.recommended.run == "fp16"
    assert verdict.recommended.moshi[0].startswith("python -m moshi.server") and not verdict.recommended.software_note
    passed = next(r for r in verdict.rankings if r.serving == "personaplex-server")
    assert "torch<2.5" in passed.note and "sm_120" in passed.note
    only = decide(_blackwell(_session([_run("bf16", [30.0] * 4606, serving="personaplex-server")])), Criteria())
    assert only.go and only.recommended is not None and "sm_120" in only.recommended.software_note, \
        "the only real-time frame is still recommended, with what its software needs"


def test_fail_on_nogo_tells_no_from_not_yet() -> None:
    """--fail-on-nogo: 3 when the evidence says no, 8 when more evidence (or a quiet machine) would decide, 0 GO."""
    from harness.records.exits import Exit
    from harness.verdict.endpoint import gate_exit

    clean = decide(_session([_run("graphs", [40.0] * 4606)]), Criteria())
    short = decide(_session([_run("graphs", [40.0] * 500)]), Criteria())
    slow = decide(_session([_run("graphs", [95.0] * 500)]), Criteria())
    assert [gate_exit(v) for v in (clean, short, slow)] == [Exit.OK, Exit.UNDECIDED, Exit.NOGO]
    assert (short.decision, slow.decision) == ("INCONCLUSIVE", "NO-GO") and int(Exit.UNDECIDED) == 8
