"""The session's side of screening (harness.verdict.screen decides): when a scenario is screened, how many frames
each configuration's screen measures, the leader measured first to the certifying length, the screen's worker
processes kept so that the certifying process's frames add to them (the winner pays for the certifying length once,
not screen + full), and which frame is certified next (the verdict's order of recommendation)."""

from __future__ import annotations

from typing import Optional

from harness.knowledge.deploy import missing_kernels
from harness.records.config import Device, RunConfig, Serving
from harness.records.plan import RunPlan
from harness.records.scenario import CertifyScope, Scenario
from harness.records.schema import Machine, RunResult, Session
from harness.session.assemble import ProcessOutcome
from harness.verdict.assess import assess_run
from harness.verdict.deploy import software_gap
from harness.verdict.screen import ScreenChoice, choose, decision_order, leader, screens


class Screening:
    def __init__(self, frames: int, certifying: int, scope: CertifyScope = CertifyScope.decision,
                 leader: Optional[str] = None, leader_p50_ms: Optional[float] = None) -> None:
        self.frames = frames
        self.certifying = certifying
        self.scope = scope
        self.leader = leader  # measured first, straight to the certifying length (harness.verdict.screen.leader)
        self.leader_p50_ms = leader_p50_ms
        self._kept: dict[str, list[ProcessOutcome]] = {}

    def frames_for(self, run: RunConfig) -> Optional[int]:
        """The screen's frames for `run`; None: measured to the certifying length at once (a capacity search, the
        leader)."""
        return None if run.capacity is not None or run.name == self.leader else self.frames

    def announce(self) -> str:
        first = (f"{self.leader} (the planner's predicted best of the frame recommended first, p50 "
                 f"{self.leader_p50_ms:.1f} ms) measures {self.certifying} frames first; then every other "
                 f"configuration measures {self.frames}" if self.leader else
                 f"every configuration measures {self.frames} frames first")
        then = ("the best of the frame the verdict recommends first (and any within noise of it) then measures on to "
                f"{self.certifying}, the next frame only if none of it certifies" if self.scope is CertifyScope.decision
                else f"the best of each frame (and any within noise of it) then measures on to {self.certifying}")
        return f"screening: {first}; {then} (screen_frames: 0 measures all)"

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

    def leader_certified(self, session: Session) -> bool:
        run = next((r for r in session.runs if r.name == self.leader), None)
        return run is not None and assess_run(run, session, session.scenario.criteria).realtime

    def choose(self, session: Session) -> list[ScreenChoice]:
        """What the screen decided for each screened run. A leader that was not certified is no comparator: the
        screen then decides as if it had not been measured first."""
        screened = {r.name for r in session.runs if r.screen_frames is not None and r.name in self._kept}
        runs = session.runs if self.leader_certified(session) else [r for r in session.runs if r.name != self.leader]
        return choose(runs, screened, session.scenario.criteria)

    def order(self, session: Session) -> list[Serving]:
        """The frames measured, in the order the verdict recommends them: a frame's server runs here unless its
        best run (lowest p99) shows a software gap (harness.verdict.deploy.software_gap)."""
        measured = [r for r in session.runs if r.metrics is not None and r.status == "ok"]
        best: dict[Serving, RunResult] = {}
        for run in measured:
            serving = run.config.serving
            if serving not in best or run.metrics.ms_per_step.p99 < best[serving].metrics.ms_per_step.p99:  # type: ignore[union-attr]
                best[serving] = run
        return decision_order(session.scenario.preset, best, lambda s: software_gap(best[s], session) is None)

    def certified(self, session: Session, serving: Serving) -> Optional[RunResult]:
        """The frame's best run certified real time (None: none is, yet)."""
        criteria = session.scenario.criteria
        real = [r for r in session.runs if r.config.serving is serving and r.metrics is not None
                and assess_run(r, session, criteria).realtime]
        return min(real, key=lambda r: r.metrics.ms_per_step.p99) if real else None  # type: ignore[union-attr]


def runs_here(machine: Optional[Machine], runs: list[RunConfig]):  # noqa: ANN201 - Callable[[Serving], bool]
    """Whether a frame's server has kernels for this machine's GPU as its package ships (a CPU: every server)."""
    capability = machine.gpus[0].compute_capability if machine is not None and machine.gpus and any(
        r.device is Device.cuda for r in runs) else None
    return lambda serving: missing_kernels(serving.value, capability) is None


def screen_plan(scenario: Scenario, runs: list[RunConfig], certifying: int, *, explicit: bool,
                plans: Optional[list[Optional[RunPlan]]] = None, machine: Optional[Machine] = None
                ) -> Optional[Screening]:
    """A Screening when this scenario screens (harness.verdict.screen.screens says when), else None; with the
    runs' plans (in the order of `runs`), its leader: the planner's predicted best of the frame recommended first."""
    frames = screens(scenario, runs, certifying, explicit=explicit)
    if frames is None:
        return None
    predicted = [(run, plan.predicted_step_ms.p50) for run, plan in zip(runs, plans or [])
                 if plan is not None and plan.feasible and plan.predicted_step_ms is not None]
    first = leader(predicted, scenario.preset, scenario.criteria.deadline_ms(scenario.frame_budget_ms),
                   runs_here(machine, runs))
    p50 = next((p for r, p in predicted if first is not None and r.name == first.name), None)
    return Screening(frames, certifying, scenario.certify, first.name if first else None, p50)
