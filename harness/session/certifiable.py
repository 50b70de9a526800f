"""Can a scenario conclude? A frame count that cannot certify the criteria even when no frame is late makes every
real-time configuration NOT ENOUGH EVIDENCE, on any machine: said when the scenario is loaded (file:line), by
`harness run` and `harness plan`, before anything runs."""

from __future__ import annotations

from typing import Optional

from harness.scenario.load import LoadedScenario
from harness.session.run_rules import frames_to_measure
from harness.stats.certify import clean_frames_to_certify


def certify_warning(loaded: LoadedScenario, override: Optional[int] = None) -> Optional[str]:
    """One line naming where the frame count comes from, when it cannot certify a clean run; None when it can."""
    scenario = loaded.scenario
    if loaded.runs and all(run.capacity is not None for run in loaded.runs):
        return None  # a capacity scenario's frames are ticks per probe, judged by the timing rule
    c = scenario.criteria
    frames = frames_to_measure(scenario, override)
    clean = clean_frames_to_certify(c.burst_frames, c.late_frame_target, c.confidence)
    if frames >= clean:
        return None
    if override is not None:
        where, what = "--frames", f"--frames {override}"
    elif scenario.duration is not None:
        where, what = loaded.where("duration"), f"duration: {scenario.duration} ({frames} frames)"
    else:
        where, what = loaded.where("frames"), f"frames: {frames}"
    seconds = clean * scenario.frame_budget_ms / 1000.0
    return (f"{where}: {what} cannot certify the criteria ({c.late_frame_target:g} late at {c.confidence:.0%} "
            f"confidence for bursts of up to {c.burst_frames} frames needs {clean} frames with none late, "
            f"{seconds:.0f} s of audio): a configuration that is real time can at best be NOT ENOUGH EVIDENCE "
            "(INCONCLUSIVE); leave frames unset to measure what certifies, or relax the criteria")
