"""Run every configuration of a scenario: the planner's predicted best of the frame recommended first straight to
the certifying length, the others screened briefly, then what decides the verdict certified (the best of each frame
in the order of recommendation, and any within noise of it, until one frame has a certified run; `certify:
every-frame`: every frame), the recommended one confirmed at pace: realtime. Results are on disk after
every run; the verdict is decided here and handed to the report to render.

The pieces: harness.session.jobs (what a worker receives), .workers (worker processes, and the run in flight
when the session is interrupted), .capacity_hooks (a capacity search's probes), .confirming, .screening."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rich.console import Console

from harness import __version__
from harness.contract.environment import measurement_env
from harness.launcher.environment import worker_env
from harness.plan.planner import compare, plan_scenario_run
from harness.plan.target import from_machine, from_scenario
from harness.probe.machine import probe_machine
from harness.records.config import Device, RunConfig, Serving
from harness.records.endpoint import EndpointResults
from harness.records.exits import UserError
from harness.records.identity import Measurement, measurement_of
from harness.records.plan import RunPlan
from harness.records.scenario import CertifyScope, Pace
from harness.records.schema import Machine, RunResult, Session, utc_now
from harness.records.store import write_session
from harness.report.render import write_report
from harness.scenario.load import LoadedScenario
from harness.session import assemble
from harness.session.capacity_hooks import run_capacity
from harness.session.clock import SessionClock
from harness.session.confirming import confirm_frames, to_confirm
from harness.session.display import RunDisplay, Work
from harness.session.jobs import JobBuilder
from harness.session.resume import plan_resume, scenario_order
from harness.session.run_rules import Skip, default_timeout_s, frames_to_measure, resolve_devices, skip_reason
from harness.session.screening import Screening, screen_plan
from harness.session.workers import WORK_DIR, WorkerHooks, Workers
from harness.verdict.endpoint import with_endpoint
from harness.verdict.recommend import decide
from harness.verdict.screen import DECIDED_BEFORE, ScreenChoice

__all__ = ["RunOptions", "ScenarioRunner", "WorkerHooks"]


@dataclass(frozen=True)
class RunOptions:
    frames: Optional[int] = None  # exact measured frames (the scenario's are raised to the criteria's minimum)
    warmup_frames: Optional[int] = None
    timeout_s: Optional[float] = None
    force: bool = False  # run what the planner predicts cannot work
    resume: Optional[Session] = None  # reuse this session's ok runs measured the same way on the same machine
    gpu_hour_usd: Optional[float] = None  # capacity runs: price for the cost per conversation-hour
    # Wall-clock cap on the whole session (seconds from its start): no run or capacity probe starts after it, and a
    # worker's timeout is cut to what is left, so that the session ends by then with what it measured.
    time_limit_s: Optional[float] = None
    endpoint: bool = True  # measure the scenario's endpoint block (`--only` leaves it out unless it names "endpoint")


class ScenarioRunner:
    def __init__(self, loaded: LoadedScenario, out_dir: Path, options: RunOptions, display_console: Console,
                 hooks: Optional[WorkerHooks] = None) -> None:
        self.loaded = loaded
        self.machine: Optional[Machine] = None
        self.out_dir = out_dir
        self.options = options
        self.console = display_console
        self.endpoint: Optional[EndpointResults] = None  # the scenario's endpoint block, once measured
        scenario = loaded.scenario
        self.frames = frames_to_measure(scenario, options.frames)
        self.warmup = options.warmup_frames or scenario.warmup_frames
        self.timeout_s = options.timeout_s or scenario.timeout_s or default_timeout_s(self.frames,
                                                                                     scenario.frame_budget_ms)
        self.clock = SessionClock(options.time_limit_s)
        self.jobs = JobBuilder(loaded, self.warmup)
        self.workers = Workers(loaded, out_dir, self.jobs, self.clock, self._configured_timeout,
                               hooks or WorkerHooks())
        self.screening: Optional[Screening] = None
        self._confirming: Optional[str] = None  # the run being confirmed at pace: realtime
        self._current: Optional[RunConfig] = None  # the scenario's run being measured (a capacity search's too)

    def _configured_timeout(self, run: RunConfig) -> float:
        return self.options.timeout_s or run.timeout_s or self.timeout_s

    def warmup_for(self, run: RunConfig) -> int:
        return self.jobs.warmup_for(run)

    def confirm_frames(self) -> int:
        return confirm_frames(self.loaded.scenario)

    def _plan(self, run: RunConfig, session: Session) -> Optional[RunPlan]:
        if session.architecture is None or self.machine is None:
            return None
        return plan_scenario_run(session.architecture, self.loaded, run, from_machine(self.machine))

    def _reusable(self, run: RunConfig, session: Session) -> Optional[RunResult]:
        """The earlier session's ok run of this name whose measurement is the same (harness.records.identity: the
        table `compare` uses too), on the same hardware."""
        previous = self.options.resume
        if previous is None or self.machine is None or previous.machine.hardware_key != self.machine.hardware_key:
            return None
        wanted = self._measurement(run, session)
        return next((r for r in previous.runs if r.status == "ok" and r.name == run.name
                     and not previous.measurement(r).differences(wanted)), None)

    def _measurement(self, run: RunConfig, session: Session, frames: Optional[int] = None) -> Measurement:
        return measurement_of(session.scenario, run, weights=session.weights, frames=frames or self.frames,
                              warmup=self.warmup_for(run), software=session.machine.packages,
                              env=measurement_env(worker_env(run, self.loaded.scenario.torch_threads)))

    def _resolve_all(self, runs: list[RunConfig]) -> list[tuple[RunConfig, Optional[str]]]:
        return resolve_devices(runs, self.machine)

    def _skip(self, run: RunConfig, auto_skip: Optional[str], plan: Optional[RunPlan]) -> Optional[Skip]:
        assert self.machine is not None
        skip = Skip(auto_skip) if auto_skip else skip_reason(run, self.machine, plan)
        if skip is not None and self.options.force and skip.forceable:
            skip = None
        if (skip is not None and run.capacity is not None and plan is not None and not plan.fits_memory
                and not any(i.severity == "blocker" for i in plan.issues)):
            skip = None  # the capacity search records each size the planner says cannot fit, without running it
        late = self.clock.out_of_time() if skip is None else None
        return Skip(late) if late is not None else skip

    def _one(self, run: RunConfig, auto_skip: Optional[str], session: Session, display: RunDisplay) -> RunResult:
        assert self.machine is not None
        reused = self._reusable(run, session)
        if reused is not None:
            display.note(f"{run.name}: measured before with the same configuration on this machine (--resume)")
            return reused.model_copy(update={"resumed": True})
        plan = self._plan(run, session)
        skip = self._skip(run, auto_skip, plan)
        screen = self.screening.frames_for(run) if self.screening is not None else None
        if skip is not None:
            result = assemble.skipped(run, skip.reason)
            if auto_skip is not None:
                result.diagnosis = assemble.diagnose(run, error_message=self.machine.cuda_unavailable_reason,
                                                     machine=self.machine)
        elif run.capacity:
            display.start(run.name, run.describe())
            result = run_capacity(self.workers, self.clock, self.loaded, run, session, display, display.note,
                                  frames_option=self.options.frames, frames=self.frames,
                                  plan_target=from_machine(self.machine) if self.machine else None,
                                  gpu_hour_usd=self.options.gpu_hour_usd)
        else:
            display.start(run.name, run.describe() + (f" (screen: {screen} frames)" if screen else ""),
                          frames=screen or self.frames, kind="screen" if screen else "full",
                          paced_ms=self.loaded.scenario.frame_budget_ms if self.loaded.scenario.pace is Pace.realtime
                          else None)
            result = self.workers.execute(run, display, screen or self.frames)
            if screen is not None and self.screening is not None:
                self.screening.keep(run.name, self.workers.last)
                if result.status == "ok":
                    result.screen_frames = screen
        result.measurement_key = self._measurement(run, session, result.screen_frames).key()
        if run.capacity is not None and result.config.batch_size:
            plan = self._plan(result.config, session)  # the plan of the size the search settled on
        self._with_plan(result, plan)
        return result

    def _with_plan(self, result: RunResult, plan: Optional[RunPlan]) -> None:
        result.plan = plan
        if plan is not None and result.metrics is not None:
            result.plan_check = compare(plan, result.metrics)

    def _record(self, session: Session, result: RunResult) -> None:
        """`result` replaces the run of its name (or joins the session), written to disk at once."""
        session.runs = [r for r in session.runs if r.name != result.name] + [result]
        session.updated_at = utc_now()
        write_session(session, self.out_dir)

    def run(self, runs: list[RunConfig]) -> Session:
        now = utc_now()
        self.clock.start()
        self.console.print("probing this machine (torch in a separate process) ...", highlight=False)
        probe = probe_machine(self.out_dir / WORK_DIR / "probe", presets=[self.loaded.scenario.preset],
                              disk_path=self.out_dir, cpu_stages=any(run.device is Device.cpu for run in runs),
                              cpu_threads=self.loaded.scenario.torch_threads or 0)
        self.machine = self.workers.machine = probe.machine
        session = Session(
            harness_version=__version__, created_at=now, updated_at=now, state="running",
            command=list(sys.argv), scenario_path=str(self.loaded.path),
            scenario=self.loaded.scenario,
            weights=str(self.loaded.weights_path) if self.loaded.weights_path else "synthetic",
            machine=self.machine, probe=probe.checks,
            architecture=probe.architectures.get(self.loaded.scenario.preset),
            frames=self.frames, warmup_frames=self.warmup,
        )
        self._carry_over(session, runs)
        write_session(session, self.out_dir)
        resolved = self._resolve_all(runs)
        measured = [r for r, skip in resolved if skip is None]
        self.screening = screen_plan(self.loaded.scenario, measured, self.frames,
                                     explicit=self.options.frames is not None,
                                     plans=[self._plan(r, session) for r in measured], machine=self.machine)
        if self.screening is not None and self.screening.leader is not None:  # measured first (screen.leader)
            resolved.sort(key=lambda item: item[0].name != self.screening.leader)  # type: ignore[union-attr]
        try:
            with RunDisplay(self.console, len(runs)) as display:
                if self.screening is not None:
                    display.note(self.screening.announce())
                display.plan(self._forecast_items(resolved))
                for run, auto_skip in resolved:
                    self._current = run
                    result = self._one(run, auto_skip, session, display)
                    self._current = None
                    self._record(session, result)
                    display.finish(result)
                if self.screening is not None:
                    self._certify(session, display)
                self._confirm(session, display)
            self._endpoint()
        except KeyboardInterrupt as exc:
            self._interrupted(session, getattr(exc, "reason", "interrupted by the user (Ctrl-C)"),
                              getattr(exc, "kept", None))
            raise
        session.state = "complete"
        self._conclude(session)
        return session

    def _forecast_items(self, resolved: list[tuple[RunConfig, Optional[str]]]) -> list[Work]:
        """The work the session expects before any run (the display's time left): each run's screen or full
        length (the leader's full), the certifying processes, the confirmation. Capacity searches are not forecast."""
        s = self.loaded.scenario
        paced = s.frame_budget_ms if s.pace is Pace.realtime else None
        works, frames_screened = [], set()
        for run, skip in resolved:
            if skip is not None or run.capacity is not None:
                continue
            screen = self.screening.frames_for(run) if self.screening is not None else None
            if screen is not None:
                works.append(Work("screen", screen, paced))
                frames_screened.add(run.serving)
            else:
                works.append(Work("full", self.frames * s.repeat, paced))
        if self.screening is not None:
            # certify: decision expects one certifying process (none when a leader is measured first);
            # every-frame one per other frame screened
            if self.screening.scope is CertifyScope.decision:
                frames_screened = set() if self.screening.leader else set(list(frames_screened)[:1])
            else:
                frames_screened -= {r.serving for r, _ in resolved if r.name == self.screening.leader}
            works += [Work("certify", self.frames - self.screening.frames, paced) for _ in frames_screened]
        if s.pace is Pace.fast and confirm_frames(s) > 0:
            works.append(Work("confirm", confirm_frames(s), paced_ms=s.frame_budget_ms))
        return works

    def _interrupted(self, session: Session, why: str, kept: Optional[RunResult] = None) -> None:
        """The run in flight, with every frame it measured, recorded as interrupted; then the verdict and files.
        A capacity search interrupted leaves `kept` (harness.session.capacity): its finished probes, kept whole."""
        in_flight = self.workers.interrupted(why)
        current = self._current
        if kept is not None and current is not None:
            probe = f"; the probe in flight ({in_flight.name}) was stopped" if in_flight is not None else ""
            in_flight = kept.model_copy(update={"name": current.name, "config": current,
                                                "reason": f"{kept.reason}{probe}"})
        elif in_flight is not None and current is not None and in_flight.name != current.name:
            # a capacity probe (or K processes) of the scenario's run: recorded under that run, probe named
            in_flight = in_flight.model_copy(update={"name": current.name, "config": current,
                                                     "reason": f"{in_flight.name}: {in_flight.reason}"})
        if in_flight is None and current is not None:  # between worker processes: nothing measured to keep
            in_flight = RunResult(name=current.name, config=current, status="interrupted",
                                  reason=f"{why}: before a worker measured a frame")
        if in_flight is not None:
            in_flight.measurement_key = self._measurement(in_flight.config, session).key()
            if self._confirming == in_flight.name and current is None:
                session.confirmation = in_flight
            else:
                session.runs = [r for r in session.runs if r.name != in_flight.name] + [in_flight]
        session.state = "interrupted"
        self._conclude(session)

    def _certify(self, session: Session, display: RunDisplay) -> None:
        """The screen's winners (harness.verdict.screen) measured on to the certifying length, in another worker
        process whose frames add to the screen's (the certificate counts blocks per process). `certify: decision`:
        frame by frame in the order the verdict recommends them, until one has a certified run (the GO's frame);
        the later frames' best stay screened only. `every-frame`: the best of every frame."""
        assert self.screening is not None
        screening = self.screening
        by_name = {r.name: r for r in session.runs}
        if screening.leader in by_name:
            lead = by_name[screening.leader]
            lead.screening = (f"measured first, to the certifying length: the planner's predicted best of the "
                              f"{lead.config.serving.label} (p50 {screening.leader_p50_ms or 0:.1f} ms predicted)")
            if not screening.leader_certified(session):
                lead.screening += "; not certified, so the screen decided as if it had not been measured first"
        pending: dict[Serving, list[ScreenChoice]] = {}
        for choice in screening.choose(session):
            current = by_name[choice.name]
            current.screening = choice.note
            if choice.certify:
                pending.setdefault(current.config.serving, []).append(choice)
        if screening.scope is CertifyScope.every_frame:
            for choices in pending.values():
                for choice in choices:
                    self._certify_one(session, display, choice)
            return
        decided: Optional[RunResult] = None
        for serving in screening.order(session):
            if decided is not None:
                for choice in pending.get(serving, []):
                    by_name[choice.name].screening = (
                        f"{DECIDED_BEFORE} {decided.config.serving.label} "
                        f"({decided.name} certified), which the verdict recommends before the {serving.label} "
                        f"(certify: every-frame measures it); the screen: {choice.note.removeprefix('certified: ')}")
                continue
            for choice in pending.get(serving, []):
                self._certify_one(session, display, choice)
            decided = screening.certified(session, serving)
            if decided is not None and any(s is not serving for s in pending):
                display.note(f"decision reached: {decided.name} is certified real time with the {serving.label}, "
                             "which the verdict recommends before the other frames: their best stay screened only")

    def _certify_one(self, session: Session, display: RunDisplay, choice: ScreenChoice) -> None:
        assert self.screening is not None
        current = next(r for r in session.runs if r.name == choice.name)
        late = self.clock.out_of_time()
        if late is not None:
            current.screening += f"; certification {late}"
            return
        more = self.screening.remaining(choice.name, self.frames)
        display.note(f"{choice.name}: {choice.note}; measuring {more} more frames to certify it")
        display.start(choice.name, f"certifying: {more} more frames", frames=more, kind="certify",
                      paced_ms=self.loaded.scenario.frame_budget_ms if self.loaded.scenario.pace is Pace.realtime
                      else None)
        result = self.workers.execute(current.config, display, more, earlier=self.screening.kept(choice.name),
                                      processes=1)
        result.screening = choice.note
        if result.status != "ok":
            result.screening += f"; certifying process failed (the screen measured {current.metrics.frames} " \
                                f"frames, p99 {current.metrics.ms_per_step.p99:.1f} ms)" if current.metrics else ""
        result.measurement_key = self._measurement(current.config, session).key()
        self._with_plan(result, current.plan)
        self._record(session, result)
        display.finish(result)

    def _confirm(self, session: Session, display: RunDisplay) -> None:
        """A GO found at pace: fast is run again, paced like a call (harness.verdict.confirm), unless the scenario
        says `confirm_frames: 0`; the verdict then says it was not confirmed."""
        scenario = self.loaded.scenario
        best = to_confirm(session, scenario) if self.clock.out_of_time() is None else None
        if best is None:
            return
        frames = confirm_frames(scenario)
        display.note(f"{best.name}: GO at pace fast; confirming at pace realtime ({frames} frames, "
                     f"{frames * scenario.frame_budget_ms / 1e3:.0f} s)")
        display.start(best.name, "confirmation at pace: realtime", frames=frames, paced_ms=scenario.frame_budget_ms,
                      kind="confirm")
        self._confirming = best.name
        session.confirmation = self.workers.execute(best.config, display, frames, paced=True)
        self._confirming = None
        write_session(session, self.out_dir)
        display.finish(session.confirmation)

    def _endpoint(self) -> None:
        """The scenario's `endpoint:` block, after the runs (harness.session.endpoint_step); its failure is a record."""
        if self.loaded.scenario.endpoint is None:
            return
        assert self.machine is not None
        if not self.options.endpoint:  # --only without "endpoint": what an earlier session measured stays
            from harness.session.endpoint_step import kept_endpoint

            self.endpoint = kept_endpoint(self.out_dir, self.console) if self.options.resume else None
            self.console.print("endpoint: not measured (--only leaves the endpoint block out; name `endpoint` to "
                               "measure it)", highlight=False)
            return
        from harness.session.endpoint_step import measure_endpoint  # the load generator: only for an endpoint block

        self.endpoint = measure_endpoint(self.loaded.scenario, self.loaded.weights_path, self.machine, self.out_dir,
                                         self.console, resume=self.options.resume is not None,
                                         not_started=self.clock.out_of_time())

    def _carry_over(self, session: Session, runs: list[RunConfig]) -> None:
        """--resume: the earlier session's runs that stay (see harness.session.resume), said aloud."""
        previous = self.options.resume
        if previous is None:
            return
        assert self.machine is not None
        if previous.machine.hardware_key != self.machine.hardware_key:
            raise UserError(f"--resume {self.out_dir}: its results were measured on other hardware "
                            f"({previous.machine.hardware_key}, this machine is {self.machine.hardware_key}); nothing "
                            "was changed: measure here with another --out")
        resolved = [run for run, _ in self._resolve_all(self.loaded.runs)]
        plan = plan_resume(previous, list(zip(resolved, (r.name for r in self.loaded.runs))),
                           {r.name for r in runs},
                           lambda old, run: not previous.measurement(old).differences(self._measurement(run, session)))
        session.runs = plan.kept
        if plan.kept:
            self.console.print(f"--resume: kept {len(plan.kept)} measured run(s) as they were: "
                               + ", ".join(r.name for r in plan.kept), markup=False, highlight=False)
        for line in plan.dropped:
            self.console.print(f"--resume: dropped {line}", markup=False, highlight=False)

    def _conclude(self, session: Session) -> None:
        """Target plans and the verdict, decided here; the report only renders them."""
        session.runs = scenario_order(session.runs, [run for run, _ in self._resolve_all(self.loaded.runs)])
        scenario = self.loaded.scenario
        if scenario.target is not None and session.architecture is not None:
            target = from_scenario(scenario.target, self.machine)
            session.target_plans = [plan_scenario_run(session.architecture, self.loaded, run, target)
                                    for run in self.loaded.runs]
        session.updated_at = utc_now()
        session.verdict = with_endpoint(decide(session, scenario.criteria), self.endpoint)
        write_session(session, self.out_dir)
        write_report(session, session.verdict, self.out_dir, endpoint=self.endpoint)
