"""The predicted wall time of a whole scenario (harness.plan.walltime): the leader first, screening, what decides."""

from __future__ import annotations

from harness.plan.walltime import CHECKPOINT_BYTES_PER_S, PROCESS_S, Costs, first_look, predict_wall_time, worker_start_s
from harness.records.config import RunConfig
from harness.records.plan import RunPlan, StepBand
from harness.records.scenario import RunDefaults, Scenario
from harness.records.schema import ColdStart
from harness.verdict.screen import frames_to_measure


def _run(name: str, **config) -> RunConfig:  # noqa: ANN003
    return RunConfig(name=name, **{**RunDefaults().model_dump(), "device": "cpu", "serving": "model", **config})


def _plan(name: str, p50: float) -> RunPlan:
    return RunPlan(run=name, device="cpu", target="here", host_peak_bytes=10**8, items=[], bytes_per_step=1,
                   feasible=True, predicted_step_ms=StepBand(p50=p50, low=p50 / 2, high=p50 * 2))


def _stages(wall) -> dict[str, float]:  # noqa: ANN001
    return {s.what.split(":")[0]: s.seconds for s in wall.stages}


def test_the_predicted_best_is_measured_first_and_certifies_without_a_second_start() -> None:
    scenario = Scenario(name="s", preset="personaplex-tiny", persona=False)
    runs = [_run("fast"), _run("slower", dtype="bfloat16"), _run("late", dtype="float16")]
    plans = [_plan("fast", 20.0), _plan("slower", 40.0), _plan("late", 200.0)]
    wall = predict_wall_time(scenario, runs, plans)
    stages = _stages(wall)
    assert set(stages) == {"probe", "leader", "screen", "confirm at pace"}, "no certifying process: the leader is"
    lead = next(s for s in wall.stages if s.what.startswith("leader"))
    assert lead.runs == ["fast"] and lead.frames == frames_to_measure(scenario)
    screen = next(s for s in wall.stages if s.what.startswith("screen"))
    assert screen.runs == ["slower", "late"]
    # a run predicted over its deadline is predicted to stop at the early stop's first look
    frames = 600 * 0.040 + first_look(scenario) * 0.200
    assert screen.seconds > frames and screen.seconds < frames + 2 * 30
    assert next(s for s in wall.stages if s.what.startswith("confirm")).runs == ["fast"]
    unscreened = predict_wall_time(scenario.model_copy(update={"screen_frames": 0}), runs, plans)
    assert "measure" in _stages(unscreened) and "certify" not in _stages(unscreened)
    assert wall.total_s < unscreened.total_s, "screening is what makes the verdict faster"
    assert wall.notes and "fixed costs assumed" in wall.notes[-1]


def test_certify_every_frame_adds_the_other_frames_best() -> None:
    """Two frames: `decision` certifies the one recommended first (its leader); `every-frame` also the other's."""
    scenario = Scenario(name="s", preset="personaplex-tiny", persona=False)
    runs = [_run("server", serving="personaplex-server"), _run("model-fast", dtype="bfloat16"),
            _run("model-slow", dtype="float16")]
    plans = [_plan("server", 50.0), _plan("model-fast", 20.0), _plan("model-slow", 30.0)]
    decision = predict_wall_time(scenario, runs, plans)
    lead = next(s for s in decision.stages if s.what.startswith("leader"))
    assert lead.runs == ["server"], "the frame the verdict recommends first, not the fastest step"
    assert "certify" not in _stages(decision)
    every = predict_wall_time(scenario.model_copy(update={"certify": "every-frame"}), runs, plans)
    certify = next(s for s in every.stages if s.what.startswith("certify"))
    assert certify.runs == ["model-fast"] and certify.frames == frames_to_measure(scenario) - 600
    assert every.total_s > decision.total_s


def test_no_run_predicted_real_time_means_no_leader() -> None:
    scenario = Scenario(name="s", preset="personaplex-tiny", persona=False)
    runs, plans = [_run("a"), _run("b", dtype="bfloat16")], [_plan("a", 100.0), _plan("b", 120.0)]
    stages = _stages(predict_wall_time(scenario, runs, plans))
    assert set(stages) == {"probe", "screen"}


def test_synthetic_weights_are_filled_a_checkpoint_is_read() -> None:
    """Synthetic weights cost the build and a device fill; a checkpoint its bytes read from disk; a measured cold
    start replaces the assumed figures."""
    run, plan = _run("a"), _plan("a", 20.0).model_copy(update={"host_peak_bytes": 16 * 10**9})
    synthetic = Scenario(name="s", preset="personaplex-tiny", persona=False)
    checkpoint = synthetic.model_copy(update={"weights": "/models/model.safetensors"})
    costs = Costs(host_gbs=20.0)
    filled = worker_start_s(run, plan, 20.0, synthetic, 10, costs)
    read = worker_start_s(run, plan, 20.0, checkpoint, 10, costs)
    assert abs((read - filled) - (16e9 / CHECKPOINT_BYTES_PER_S - 16e9 / 10e9)) < 1e-6
    measured = Costs(measured={"a": ColdStart(import_s=1.0, load_s=2.0, warmup_s=3.0, total_s=6.0, synthetic=True)},
                     measured_in="reports/x")
    assert worker_start_s(run, plan, 20.0, synthetic, 10, measured) == PROCESS_S + 6.0
    wall = predict_wall_time(synthetic, [run, _run("b")], [plan, _plan("b", 30.0)], costs=measured)
    assert "measured in reports/x used for a" in wall.notes[-1]


def test_explicit_frames_are_measured_as_asked() -> None:
    scenario = Scenario(name="s", preset="personaplex-tiny", persona=False, frames=500)
    runs, plans = [_run("a"), _run("b")], [_plan("a", 20.0), _plan("b", 30.0)]
    stages = _stages(predict_wall_time(scenario, runs, plans))
    assert "measure" in stages and "screen" not in stages
