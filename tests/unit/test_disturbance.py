"""A disturbed machine is not a slow configuration: the verdict reads the worker's own per-frame CPU evidence
(fabricated series here: no timing of this machine is asserted)."""

from __future__ import annotations

import pytest

from harness.records.scenario import Criteria, Pace
from harness.records.schema import FrameCpuSamples, RunResult
from harness.stats.disturbance import corroborated, disturbed_frames, interference, spans, stolen_ms
from harness.verdict.recommend import decide
from tests.unit.test_verdict import _run, _session

FRAMES = 4606  # what a scenario at the defaults measures (certifies 1% at 99% for bursts of 10)
SLOW = range(16, 34)  # the disturbed stretch: frames 16-33


def _cpu_run(wall: list[float], cpu: list[float], wait: list[float], name: str = "cpu-fp32-eager",
             others: list[float] | None = None, threads: int = 0, cores: int = 0,
             sampler_wait: list[float] | None = None) -> RunResult:
    """`wait` is the frame's carriers' (main thread + torch's pool); `sampler_wait` a helper thread's on top."""
    run = _run(name, wall, budget=1000.0, device="cpu", dtype="float32")
    assert run.metrics is not None
    anything = [max(w, s) for w, s in zip(wait, sampler_wait)] if sampler_wait else wait
    run.metrics.frame_cpu = FrameCpuSamples(cpu_ms=cpu, process_cpu_ms=cpu, run_wait_ms=anything,
                                            main_wait_ms=wait, frame_wait_ms=wait,
                                            others_cpu_ms=others if others is not None else [0.0] * len(wall),
                                            gc_ms=[0.0] * len(wall), threads=threads, cores=cores,
                                            sources={"run_wait": "schedstat", "others_cpu": "/proc/stat"})
    return run


def _others_in_slow(value: float) -> list[float]:
    return [value if i in SLOW else 0.0 for i in range(FRAMES)]


def _series(slow_wall: float, slow_cpu: float, slow_wait: float) -> tuple[list[float], list[float], list[float]]:
    wall = [140.0 + (i % 7) for i in range(FRAMES)]
    cpu = [w - 1.0 for w in wall]
    wait = [0.2] * FRAMES
    for i in SLOW:
        wall[i], cpu[i], wait[i] = slow_wall, slow_cpu, slow_wait
    return wall, cpu, wait


def test_stolen_time_comes_from_run_queue_wait_or_from_the_main_thread_off_cpu() -> None:
    wall = [100.0, 100.0, 400.0, 100.0]
    assert stolen_ms(wall, [99.0, 99.0, 99.0, 99.0], [0.0] * 4) == pytest.approx([0.0, 0.0, 300.0, 0.0])
    assert stolen_ms(wall, [99.0] * 4, [0.0, 0.0, 250.0, 0.0], cpu_bound=False) == pytest.approx([0, 0, 250, 0])
    assert stolen_ms(wall, [5.0] * 4, [], cpu_bound=False) == [0.0] * 4, "a GPU run waits for the device legally"
    assert disturbed_frames(wall, [0.0, 1.0, 300.0, 0.0]) == [2]
    assert spans([16, 17, 18, 40, 41, 50]) == "16-18, 40-41, 50"


def test_a_disturbed_run_says_re_run_instead_of_no_go() -> None:
    """The issue's case: frames 16-33 took 0.3-3.1 s on a 1000 ms budget while the worker waited for a CPU."""
    wall, cpu, wait = _series(slow_wall=3049.0, slow_cpu=140.0, slow_wait=2900.0)
    run = _cpu_run(wall, cpu, wait, others=_others_in_slow(2950.0))  # other processes had the CPU meanwhile
    verdict = decide(_session([run], preset="personaplex-tiny"), Criteria())
    assert not verdict.go and verdict.rerun == ["cpu-fp32-eager"]
    assert verdict.headline.startswith("RE-RUN: the machine was disturbed during 18 frames")
    assessment = verdict.assessments[0]
    assert assessment.rerun and assessment.disturbed_frames == 18
    assert assessment.reasons[0].startswith("the machine was disturbed during 18 frames: re-run")
    assert "measured frames 16-33" in assessment.reasons[0] and "waited" in assessment.reasons[0]
    assert "other processes used 53100 ms of CPU meanwhile" in assessment.reasons[0]


def test_the_same_waits_with_nothing_else_on_the_cpu_are_the_configurations() -> None:
    """The issue's contradiction: 'the machine was disturbed' beside 'other processes used 0 ms'. Without other
    processes' CPU the wait is the process's own: judged as measured, the evidence kept as a flag."""
    wall, cpu, wait = _series(slow_wall=3049.0, slow_cpu=140.0, slow_wait=2900.0)
    verdict = decide(_session([_cpu_run(wall, cpu, wait)], preset="personaplex-tiny"), Criteria())
    assert verdict.headline.startswith("NO-GO") and not verdict.rerun
    assessment = verdict.assessments[0]
    assert not assessment.rerun and assessment.disturbed_frames == 0
    assert not any("disturbed" in line for line in assessment.reasons + assessment.flags)
    own = [f for f in assessment.flags if f.startswith("frames 16-33: its threads could not run")]
    assert own and "nothing outside explains it (other processes used 0 ms of CPU meanwhile" in own[0]


def test_a_self_inflicted_oversubscription_is_not_re_run_and_names_torch_threads() -> None:
    """8 torch threads on 2 cores: every frame waits for a CPU (its steady state), some frames much longer, and
    nothing else runs on the machine. A quiet machine would give the same: NO-GO with the fix, never RE-RUN."""
    wall = [1100.0 + (i % 7) for i in range(FRAMES)]
    cpu = [300.0] * FRAMES
    wait = [700.0 + (i % 5) for i in range(FRAMES)]
    for i in SLOW:
        wall[i], wait[i] = 3049.0, 2700.0
    verdict = decide(_session([_cpu_run(wall, cpu, wait, threads=8, cores=2)], preset="personaplex-tiny"),
                     Criteria())
    assert verdict.headline.startswith("NO-GO") and not verdict.rerun
    flags = verdict.assessments[0].flags
    assert any("the run's 8 torch threads exceed the 2 cores" in f and "set torch_threads: 2" in f for f in flags)


def test_the_telemetry_samplers_wait_is_not_the_frames() -> None:
    """A GPU-style case on a CPU record: only the sampler thread waited (it carries no frame): nothing stolen."""
    wall, cpu, wait = _series(slow_wall=141.0, slow_cpu=140.0, slow_wait=0.2)
    sampler = [0.0] * FRAMES
    for i in SLOW:
        sampler[i] = 900.0
    run = _cpu_run(wall, cpu, wait, others=_others_in_slow(900.0), sampler_wait=sampler)
    verdict = decide(_session([run], preset="personaplex-tiny"), Criteria())
    assert verdict.go and verdict.assessments[0].disturbed_frames == 0


def test_an_oversubscribed_runs_usual_wait_is_its_own() -> None:
    """Outnumbered by its own threads, only the wait beyond the run's usual can be anyone else's."""
    assert stolen_ms([100.0] * 4, [50.0] * 4, [40.0, 40.0, 40.0, 90.0], cpu_bound=False,
                     own_wait_ms=40.0) == pytest.approx([0.0, 0.0, 0.0, 50.0])
    assert corroborated([3], [0.0, 0.0, 0.0, 50.0], [0.0, 0.0, 0.0, 25.0]) == [3]
    assert corroborated([3], [0.0, 0.0, 0.0, 50.0], [0.0, 0.0, 0.0, 20.0]) == []
    assert corroborated([3], [0.0, 0.0, 0.0, 50.0], []) == [], "no evidence of others: nothing outside is blamed"


def test_the_same_slow_frames_running_on_cpu_are_the_configurations() -> None:
    """Slow frames whose time the worker spent on a CPU are slow code: NO-GO, as before."""
    wall, cpu, wait = _series(slow_wall=3049.0, slow_cpu=3040.0, slow_wait=0.2)
    verdict = decide(_session([_cpu_run(wall, cpu, wait)], preset="personaplex-tiny"), Criteria())
    assert verdict.headline.startswith("NO-GO") and not verdict.rerun
    assert "underruns" in verdict.reasons[0]


def test_a_disturbance_that_cannot_explain_the_failure_does_not_excuse_it() -> None:
    """Every frame over the deadline by code, a few also disturbed: NO-GO, with the disturbance as a flag."""
    wall, cpu, wait = _series(slow_wall=3049.0, slow_cpu=140.0, slow_wait=2900.0)
    wall = [w + 900.0 for w in wall]
    cpu = [c + 900.0 for c in cpu]
    run = _cpu_run(wall, cpu, wait, others=_others_in_slow(2950.0))
    verdict = decide(_session([run], preset="personaplex-tiny"), Criteria())
    assert verdict.headline.startswith("NO-GO") and not verdict.rerun
    assert any(f.startswith("the machine was disturbed during 18 frames") for f in verdict.assessments[0].flags)


def test_an_undisturbed_clean_run_at_the_defaults_is_go() -> None:
    wall, cpu, wait = _series(slow_wall=141.0, slow_cpu=140.0, slow_wait=0.2)
    verdict = decide(_session([_cpu_run(wall, cpu, wait)], preset="personaplex-tiny"), Criteria())
    assert verdict.go and not verdict.rerun and verdict.assessments[0].disturbed_frames == 0


def test_interference_is_what_the_stolen_time_adds_to_a_statistic() -> None:
    wall = [100.0] * 90 + [200.0] * 10
    stolen = [0.0] * 90 + [100.0] * 10
    assert interference(wall, stolen, 50).inflation == pytest.approx(0.0)
    assert interference(wall, stolen, None).inflation == pytest.approx(0.1)
    assert interference(wall, [0.0] * 100, 99).inflation == pytest.approx(0.0)


def test_a_go_at_pace_fast_says_whether_real_time_pace_confirmed_it() -> None:
    wall, cpu, wait = _series(slow_wall=141.0, slow_cpu=140.0, slow_wait=0.2)
    session = _session([_cpu_run(wall, cpu, wait)], preset="personaplex-tiny")
    assert session.scenario.pace is Pace.fast
    unconfirmed = decide(session, Criteria())
    assert unconfirmed.go and unconfirmed.confirmation is None
    assert any("NOT confirmed at pace: realtime" in r for r in unconfirmed.reasons)
    paced = [141.0] * 100
    paced[50] = 2500.0  # one paced frame 1.5 s over a 1000 ms budget: underruns at real-time pace
    session.confirmation = _cpu_run(paced, [p - 1.0 for p in paced], [0.2] * 100)  # on a CPU all along: slow
    failed = decide(session, Criteria())
    assert not failed.go and failed.confirmation is not None and not failed.confirmation.confirmed
    assert failed.headline.startswith("NO-GO: cpu-fp32-eager runs") and "but not at pace: realtime" in failed.headline
    session.confirmation = _cpu_run([141.0] * 100, [140.0] * 100, [0.2] * 100)
    confirmed = decide(session, Criteria())
    assert confirmed.go and confirmed.confirmation is not None and confirmed.confirmation.confirmed
    assert any(r.startswith("confirmed at pace: realtime: p99 141.0 ms over 100 paced frames") for r in confirmed.reasons)


def test_an_own_wait_in_most_frames_is_called_the_steady_state() -> None:
    """A CPU run whose main thread is off-CPU in every frame gap... here: waits in every frame, nothing outside."""
    wall = [1400.0] * FRAMES
    wait = [500.0] * FRAMES
    verdict = decide(_session([_cpu_run(wall, [900.0] * FRAMES, wait)], preset="personaplex-tiny"), Criteria())
    assert verdict.headline.startswith("NO-GO") and not verdict.rerun
    assert any("in most frames: the configuration's steady state, not a disturbance" in f
               for f in verdict.assessments[0].flags)


def test_a_machine_loaded_throughout_by_others_is_re_run() -> None:
    """Every frame waited and other processes used that CPU meanwhile: a quiet machine would not give the same."""
    wall = [1400.0] * FRAMES
    wait = [600.0] * FRAMES
    run = _cpu_run(wall, [800.0] * FRAMES, wait, others=[700.0] * FRAMES)  # 800 ms of its own: well in budget
    verdict = decide(_session([run], preset="personaplex-tiny"), Criteria())
    assert verdict.rerun == ["cpu-fp32-eager"]
