"""Every shipped scenario can conclude: a clean, fast run at the frames it measures is GO, and a scenario whose
frame count cannot certify its own criteria is named at load (file:line). A rule no real run can satisfy is a bug."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.records.scenario import Criteria
from harness.scenario.load import load_scenario
from harness.session.certifiable import certify_warning
from harness.session.run_rules import frames_to_measure
from harness.verdict.recommend import decide
from tests.unit.test_verdict import _run, _session

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


def test_the_scenarios_folder_is_found() -> None:
    assert len(SCENARIOS) >= 10


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_a_clean_fast_run_at_the_scenarios_frames_is_go(path: Path) -> None:
    loaded = load_scenario(path)
    scenario = loaded.scenario
    if all(run.capacity is not None for run in loaded.runs):
        pytest.skip("a capacity search: its frames are ticks per probe, judged by the timing rule")
    assert certify_warning(loaded) is None
    frames = frames_to_measure(scenario)
    budget = scenario.frame_budget_ms
    config = loaded.runs[0]
    fast = [0.4 * budget + (i % 7) * 0.01 * budget for i in range(frames)]  # RTF 0.4-0.46, none late
    run = _run(config.name, fast, budget=budget, device=config.device.value, dtype=config.dtype.value,
               serving=config.serving.value)
    session = _session([run], preset=scenario.preset)
    session.scenario = scenario
    verdict = decide(session, scenario.criteria)
    assert verdict.decision == "GO", (path.name, verdict.reasons)


def test_a_frame_count_that_cannot_certify_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text("name: short\npreset: personaplex-tiny\nframes: 500\nruns:\n  - device: cpu\n")
    warning = certify_warning(load_scenario(path))
    assert warning is not None and warning.startswith(f"{path}:3: frames: 500 cannot certify the criteria")
    assert "4606 frames with none late" in warning
    assert certify_warning(load_scenario(path), override=40) is not None
    assert certify_warning(load_scenario(path), override=5000) is None
    # and a clean run at those 500 frames is INCONCLUSIVE, not NO-GO: more frames settle it
    session = _session([_run("cpu-bf16-eager", [30.0] * 500)])
    assert decide(session, Criteria()).decision == "INCONCLUSIVE"
