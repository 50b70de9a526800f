"""The predicted wall time of a whole scenario (harness.plan.walltime): screening pays the certifying length once."""

from __future__ import annotations

from harness.plan.walltime import first_look, predict_wall_time
from harness.records.config import RunConfig
from harness.records.plan import RunPlan, StepBand
from harness.records.scenario import RunDefaults, Scenario
from harness.verdict.screen import frames_to_measure


def _run(name: str, **config) -> RunConfig:  # noqa: ANN003
    return RunConfig(name=name, **{**RunDefaults().model_dump(), "device": "cpu", "serving": "model", **config})


def _plan(name: str, p50: float) -> RunPlan:
    return RunPlan(run=name, device="cpu", target="here", host_peak_bytes=10**8, items=[], bytes_per_step=1,
                   feasible=True, predicted_step_ms=StepBand(p50=p50, low=p50 / 2, high=p50 * 2))


def _stages(wall) -> dict[str, float]:  # noqa: ANN001
    return {s.what.split(":")[0]: s.seconds for s in wall.stages}


def test_screened_scenario_certifies_the_best_once_and_confirms_it() -> None:
    scenario = Scenario(name="s", preset="personaplex-tiny", persona=False)
    runs = [_run("fast"), _run("slower", dtype="bfloat16"), _run("late", dtype="float16")]
    plans = [_plan("fast", 20.0), _plan("slower", 40.0), _plan("late", 200.0)]
    wall = predict_wall_time(scenario, runs, plans)
    stages = _stages(wall)
    assert set(stages) == {"probe", "screen", "certify", "confirm at pace"}
    certify = next(s for s in wall.stages if s.what.startswith("certify"))
    assert certify.runs == ["fast"] and certify.frames == frames_to_measure(scenario) - 600
    screen = next(s for s in wall.stages if s.what.startswith("screen"))
    # a run predicted over its deadline is predicted to stop at the early stop's first look
    frames = 600 * 0.020 + 600 * 0.040 + first_look(scenario) * 0.200
    assert screen.seconds > frames and screen.seconds < frames + 3 * 10
    unscreened = predict_wall_time(scenario.model_copy(update={"screen_frames": 0}), runs, plans)
    assert "measure" in _stages(unscreened) and "certify" not in _stages(unscreened)
    assert wall.total_s < unscreened.total_s, "screening is what makes the verdict faster"
    assert wall.notes and "fixed costs assumed" in wall.notes[-1]


def test_explicit_frames_are_measured_as_asked() -> None:
    scenario = Scenario(name="s", preset="personaplex-tiny", persona=False, frames=500)
    runs, plans = [_run("a"), _run("b")], [_plan("a", 20.0), _plan("b", 30.0)]
    stages = _stages(predict_wall_time(scenario, runs, plans))
    assert "measure" in stages and "screen" not in stages
