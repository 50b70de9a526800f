"""The session's side of screening (harness.verdict.screen decides): when a scenario is screened, how many frames
each configuration's screen measures, and the screen's worker processes kept so that the certifying process's
frames add to them (the winner pays for the certifying length once, not screen + full)."""

from __future__ import annotations

from typing import Optional

from harness.records.config import RunConfig
from harness.records.scenario import Scenario
from harness.records.schema import Session
from harness.session.assemble import ProcessOutcome
from harness.verdict.screen import ScreenChoice, choose, screens


class Screening:
    def __init__(self, frames: int, certifying: int) -> None:
        self.frames = frames
        self.certifying = certifying
        self._kept: dict[str, list[ProcessOutcome]] = {}

    def frames_for(self, run: RunConfig) -> Optional[int]:
        """The screen's frames for `run`; None: measured to the certifying length at once (a capacity search)."""
        return None if run.capacity is not None else self.frames

    def announce(self) -> str:
        return (f"screening: every configuration measures {self.frames} frames first; the best of each frame (and "
                f"any within noise of it) then measures on to {self.certifying} (screen_frames: 0 measures all)")

    def keep(self, name: str, processes: list[ProcessOutcome]) -> None:
        if processes and all(p.ok for p in processes):
            self._kept[name] = list(processes)

    def kept(self, name: str) -> list[ProcessOutcome]:
        return list(self._kept.get(name, []))

    def remaining(self, name: str, certifying: int) -> int:
        """Frames the certifying process measures: what the screen's processes did not."""
        measured = sum(len(p.reply.samples.total_ms) for p in self._kept.get(name, [])
                       if p.reply is not None and p.reply.samples is not None)
        return max(1, certifying - measured)

    def choose(self, session: Session) -> list[ScreenChoice]:
        screened = {r.name for r in session.runs if r.screen_frames is not None and r.name in self._kept}
        return choose(session.runs, screened, session.scenario.criteria)


def screen_plan(scenario: Scenario, runs: list[RunConfig], certifying: int, *, explicit: bool) -> Optional[Screening]:
    """A Screening when this scenario screens (harness.verdict.screen.screens says when), else None."""
    frames = screens(scenario, runs, certifying, explicit=explicit)
    return None if frames is None else Screening(frames, certifying)
