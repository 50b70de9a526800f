"""Which screened configurations are measured on to the certifying length (harness.verdict.screen), both ways."""

from __future__ import annotations

import numpy as np

from harness.records.config import RunConfig
from harness.records.scenario import Criteria, RunDefaults, Scenario
from harness.records.schema import RunMetrics, RunResult
from harness.session.screening import screen_plan
from harness.stats.percentiles import summarize
from harness.verdict.screen import SCREEN_FRAMES, cannot_certify, choose, screen_length


def _steps(p50: float, seed: int, n: int = 600, spread: float = 0.04) -> list[float]:
    """Step times with a realistic right tail: a lognormal body around p50."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in p50 * np.exp(rng.normal(0.0, spread, n))]


def _run(name: str, samples: list[float], serving: str = "model", stopped: str = "") -> RunResult:
    stats = summarize(samples)
    cfg = RunConfig(name=name, **{**RunDefaults().model_dump(), "device": "cuda", "serving": serving})
    metrics = RunMetrics(frames=len(samples), warmup_frames=10, frame_budget_ms=80.0, ms_per_step=stats,
                         rtf=stats.p50 / 80, rtf_p99=stats.p99 / 80, stage_p50_ms={}, peak_rss_bytes=1,
                         rss_after_load_bytes=1, load_s=1.0, first_step_s=0.1, warmup_s=1.0, samples_ms=samples,
                         stage_samples_ms={}, stopped_early=stopped)
    return RunResult(name=name, config=cfg, status="ok", metrics=metrics, screen_frames=len(samples))


def _certified(choices) -> set[str]:  # noqa: ANN001
    return {c.name for c in choices if c.certify}


def test_a_clearly_slower_configuration_is_not_certified() -> None:
    runs = [_run("fast", _steps(40.0, 1)), _run("slow", _steps(50.0, 2))]
    choices = choose(runs, {"fast", "slow"}, Criteria())
    assert _certified(choices) == {"fast"}
    slow = next(c for c in choices if c.name == "slow")
    assert "slower than fast beyond the screen's noise" in slow.note


def test_a_configuration_within_noise_of_the_best_is_certified() -> None:
    # The same distribution measured twice: which screen comes out ahead is chance, so both go on.
    runs = [_run("a", _steps(40.0, 3)), _run("b", _steps(40.0, 4))]
    choices = choose(runs, {"a", "b"}, Criteria())
    assert _certified(choices) == {"a", "b"}
    assert any("within the screen's noise" in c.note for c in choices)


def test_each_frame_has_its_own_best() -> None:
    """Runs are ranked only against runs of the same frame: the slower frame's best is certified too."""
    runs = [_run("model", _steps(40.0, 5)), _run("server", _steps(60.0, 6), serving="personaplex-server")]
    assert _certified(choose(runs, {"model", "server"}, Criteria())) == {"model", "server"}


def test_a_run_that_cannot_certify_is_not_measured_on() -> None:
    late = _steps(40.0, 7)
    late[::20] = [75.0] * len(late[::20])  # 5% of frames over the 72 ms deadline: no length certifies 1%
    stopped = _run("stopped", _steps(40.0, 8), stopped="stopped after 100 of 600 frames")
    runs = [_run("late", late), stopped, _run("ok", _steps(45.0, 9))]
    choices = choose(runs, {"late", "stopped", "ok"}, Criteria())
    assert _certified(choices) == {"ok"}, "the only run that may be real time is its frame's best"
    assert "above the 1% the criteria allow" in next(c.note for c in choices if c.name == "late")
    assert cannot_certify(stopped, Criteria()) == "stopped after 100 of 600 frames"


def test_runs_measured_in_full_are_compared_against_but_never_chosen() -> None:
    full = _run("resumed", _steps(40.0, 10, n=4590))
    full.screen_frames = None
    choices = choose([full, _run("slow", _steps(55.0, 11))], {"slow"}, Criteria())
    assert [c.name for c in choices] == ["slow"] and not choices[0].certify


def test_when_a_scenario_screens() -> None:
    runs = [RunConfig(name=n, **{**RunDefaults().model_dump(), "device": "cpu"}) for n in ("a", "b")]
    base = {"name": "s", "preset": "personaplex-tiny"}
    plan = screen_plan(Scenario(**base), runs, 4590, explicit=False)
    assert plan is not None and plan.frames == SCREEN_FRAMES == screen_length(None, 4590)
    assert screen_plan(Scenario(**base), runs, 4590, explicit=True) is None, "--frames measures exactly that"
    assert screen_plan(Scenario(**base, frames=5000), runs, 5000, explicit=False) is None, "frames: as asked"
    assert screen_plan(Scenario(**base, screen_frames=0), runs, 4590, explicit=False) is None, "the switch"
    assert screen_plan(Scenario(**base, repeat=2), runs, 4590, explicit=False) is None
    assert screen_plan(Scenario(**base), runs[:1], 4590, explicit=False) is None, "one configuration: no choice"
    assert screen_plan(Scenario(**base, screen_frames=200), runs, 4590, explicit=False).frames == 200
    assert screen_plan(Scenario(**base, screen_frames=9000), runs, 4590, explicit=False) is None


def test_a_disturbed_screen_does_not_rule_a_configuration_out() -> None:
    """Frames late only by the time their threads waited for a CPU are the machine's, as the early stop counts
    them: the configuration stays a candidate (the verdict judges the disturbance)."""
    from harness.records.schema import FrameCpuSamples

    samples = _steps(40.0, 12)
    samples[::10] = [95.0] * len(samples[::10])  # 10% over the deadline ...
    waits = [60.0 if ms == 95.0 else 0.0 for ms in samples]  # ... each by 60 ms of run-queue wait
    disturbed = _run("disturbed", samples)
    disturbed.metrics.frame_cpu = FrameCpuSamples(cpu_ms=samples, run_wait_ms=waits)
    assert cannot_certify(disturbed, Criteria()) is None
    disturbed.metrics.frame_cpu = FrameCpuSamples(cpu_ms=samples, run_wait_ms=[0.0] * len(samples))
    assert "60 of 600 screened frames late" in cannot_certify(disturbed, Criteria())


def test_frames_are_certified_in_the_order_the_verdict_recommends_them() -> None:
    from harness.records.config import Serving
    from harness.verdict.screen import decision_order

    frames = [Serving.model, Serving.moshi_server, Serving.personaplex_server]
    assert decision_order("personaplex-tiny", frames, lambda s: True) == [
        Serving.personaplex_server, Serving.moshi_server, Serving.model]
    assert decision_order("moshi-tiny", frames, lambda s: True)[0] is Serving.moshi_server
    # a server without kernels for this GPU comes after the others (the verdict falls back to it last)
    no_nvidia = decision_order("personaplex-tiny", frames, lambda s: s is not Serving.personaplex_server)
    assert no_nvidia == [Serving.moshi_server, Serving.model, Serving.personaplex_server]


def test_the_leader_is_the_predicted_best_of_the_frame_recommended_first() -> None:
    from harness.verdict.screen import leader

    def cfg(name: str, serving: str) -> RunConfig:
        return RunConfig(name=name, **{**RunDefaults().model_dump(), "device": "cuda", "serving": serving})

    server, server_fast = cfg("server", "personaplex-server"), cfg("server-fast", "personaplex-server")
    model = cfg("model", "model")
    predicted = [(model, 10.0), (server, 50.0), (server_fast, 40.0)]
    assert leader(predicted, "personaplex-tiny", 72.0, lambda s: True) == server_fast, "not the fastest frame"
    assert leader([(model, 10.0), (server, 90.0)], "personaplex-tiny", 72.0, lambda s: True) == model, \
        "a frame with no run predicted within the deadline is passed over"
    assert leader([(model, 80.0), (server, 90.0)], "personaplex-tiny", 72.0, lambda s: True) is None
    assert leader(predicted, "personaplex-tiny", 72.0, lambda s: s.value != "personaplex-server") == model


def test_the_screen_follows_the_criteria_tail() -> None:
    """The screen measures what the criteria's late share speaks of: p99 on 600 frames at the default 1%, p95 on
    120 frames at 5% (a 600-frame screen would be two thirds of that scenario's 922 certifying frames)."""
    assert screen_length(None, 4606, Criteria()) == SCREEN_FRAMES == 600
    assert screen_length(None, 922, Criteria(late_frame_target=0.05)) == 120
    assert screen_length(None, 922, Criteria(late_frame_target=0.2)) == 100, "never under 10 blocks of 10"
    assert screen_length(300, 922, Criteria(late_frame_target=0.05)) == 300, "screen_frames as asked"
    # The two tails rank these two apart: "a" is faster in 95% of its frames, "b" in its slowest 1%.
    a = _run("a", [50.0] * 95 + [71.0] * 5)
    b = _run("b", [60.0] * 99 + [65.0])
    five = {c.name: c for c in choose([a, b], {"a", "b"}, Criteria(late_frame_target=0.05))}
    assert five["a"].certify and "best screened p95 of" in five["a"].note
    one = {c.name: c for c in choose([a, b], {"a", "b"}, Criteria())}
    assert one["b"].certify and "best screened p99 of" in one["b"].note
