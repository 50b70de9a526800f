"""Run every configuration of a scenario, one worker each; results on disk after every run."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from pydantic import ValidationError
from rich.console import Console

from harness import __version__
from harness.launcher.console import RunDisplay
from harness.launcher.environment import worker_env
from harness.launcher.spawn import run_worker
from harness.plan.planner import compare, plan_scenario_run
from harness.plan.target import from_machine, from_scenario
from harness.probe.machine import probe_machine
from harness.records import assemble
from harness.records.plan import RunPlan
from harness.records.schema import Machine, RunResult, Session, utc_now
from harness.records.store import write_session
from harness.report.render import write_report
from harness.scenario.load import LoadedScenario
from harness.scenario.model import Device, Pace, RunConfig
from harness.worker.protocol import BenchJob, BenchReply, ProgressEvent

WORK_DIR = ".work"
LOG_DIR = "logs"


@dataclass(frozen=True)
class WorkerHooks:
    """Callbacks for whoever embeds the runner (tests, tools): worker started, worker event."""

    started: Callable[[str, int], None] = lambda run_name, pid: None
    event: Callable[[str, ProgressEvent], None] = lambda run_name, event: None


@dataclass(frozen=True)
class RunOptions:
    frames: Optional[int] = None
    warmup_frames: Optional[int] = None
    timeout_s: Optional[float] = None
    force: bool = False  # run what the planner predicts cannot work


def resolve_device(run: RunConfig, machine: Machine) -> RunConfig:
    if run.device is not Device.auto:
        return run
    return run.model_copy(update={"device": Device.cuda if machine.cuda_available else Device.cpu})


def skip_reason(run: RunConfig, machine: Machine, plan: Optional[RunPlan]) -> Optional[str]:
    if run.device is Device.cuda and not machine.cuda_available:
        return f"CUDA is not available on this machine: {machine.cuda_unavailable_reason or 'no CUDA device'}"
    if run.cuda_graphs and run.device is Device.cpu:
        return "CUDA graphs need a CUDA device; this run resolved to the CPU (set cuda_graphs: off to run it here)"
    if plan is not None and not plan.feasible:
        return "predicted not to work here: " + "; ".join(plan.reasons) + " (--force runs it anyway)"
    return None


class ScenarioRunner:
    def __init__(self, loaded: LoadedScenario, out_dir: Path, options: RunOptions, display_console: Console,
                 hooks: Optional[WorkerHooks] = None) -> None:
        self.loaded = loaded
        self.hooks = hooks or WorkerHooks()
        self.machine: Optional[Machine] = None
        self.out_dir = out_dir
        self.options = options
        self.console = display_console
        scenario = loaded.scenario
        self.frames = options.frames or scenario.measured_frames
        self.warmup = options.warmup_frames or scenario.warmup_frames
        self.timeout_s = options.timeout_s or scenario.timeout_s

    def _job(self, run: RunConfig, work: Path) -> BenchJob:
        s = self.loaded.scenario
        return BenchJob(run=run, preset=s.preset,
                        weights_path=str(self.loaded.weights_path) if self.loaded.weights_path else None,
                        frames=self.frames, warmup_frames=self.warmup, batch_size=s.batch_size,
                        torch_threads=s.torch_threads, seed=s.seed, scratch_dir=str(work / "scratch"),
                        paced_frame_ms=s.frame_budget_ms if s.pace is Pace.realtime else None,
                        telemetry_hz=s.telemetry_hz,
                        reply_path=str(work / "reply.json"))

    def _execute(self, run: RunConfig, display: RunDisplay) -> RunResult:
        work = self.out_dir / WORK_DIR / run.name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        job = self._job(run, work)
        job_file = work / "job.json"
        job_file.write_text(job.model_dump_json(indent=2))
        started = utc_now()

        def on_event(event: ProgressEvent) -> None:
            display.event(event)
            self.hooks.event(run.name, event)

        timeout_s = self.options.timeout_s or run.timeout_s or self.timeout_s
        outcome = run_worker(job_file, worker_env(run, self.loaded.scenario.torch_threads), timeout_s,
                             self.out_dir / LOG_DIR, run.name, on_event=on_event,
                             on_start=lambda pid: self.hooks.started(run.name, pid),
                             memory_limit_bytes=self.loaded.scenario.host_memory_limit_bytes)
        reply: Optional[BenchReply] = None
        try:
            reply = BenchReply.model_validate_json(Path(job.reply_path).read_text())
        except (OSError, ValidationError, ValueError):
            reply = None
        result = assemble.from_worker(run, outcome, reply, frame_budget_ms=self.loaded.scenario.frame_budget_ms,
                                      warmup_frames=self.warmup, timeout_s=timeout_s, started_at=started,
                                      machine=self.machine)
        shutil.rmtree(work / "scratch", ignore_errors=True)  # offloaded weights can be gigabytes
        return result

    def _plan(self, run: RunConfig, session: Session) -> Optional[RunPlan]:
        if session.architecture is None or self.machine is None:
            return None
        return plan_scenario_run(session.architecture, self.loaded, run, from_machine(self.machine))

    def run(self, runs: list[RunConfig]) -> Session:
        now = utc_now()
        self.console.print("probing this machine (torch in a separate process) ...", highlight=False)
        probe = probe_machine(self.out_dir / WORK_DIR / "probe", presets=[self.loaded.scenario.preset],
                              disk_path=self.out_dir)
        machine = self.machine = probe.machine
        session = Session(
            harness_version=__version__, created_at=now, updated_at=now, state="running",
            command=list(sys.argv), scenario_path=str(self.loaded.path),
            scenario=self.loaded.scenario.model_dump(mode="json"),
            weights=str(self.loaded.weights_path) if self.loaded.weights_path else "synthetic",
            machine=machine,
            probe=probe.checks,
            architecture=probe.architectures.get(self.loaded.scenario.preset),
        )
        write_session(session, self.out_dir)
        try:
            with RunDisplay(self.console, len(runs)) as display:
                for configured in runs:
                    run = resolve_device(configured, machine)
                    plan = self._plan(run, session)
                    reason = skip_reason(run, machine, plan)
                    if reason is not None and self.options.force and reason.startswith("predicted"):
                        reason = None
                    if reason is not None:
                        result = assemble.skipped(run, reason)
                    else:
                        display.start(run.name, run.describe())
                        try:
                            result = self._execute(run, display)
                        except KeyboardInterrupt:
                            session.runs.append(RunResult(name=run.name, config=run, status="failed",
                                                          reason="interrupted by the user (Ctrl-C)"))
                            raise
                    result.plan = plan
                    if plan is not None and result.metrics is not None:
                        result.plan_check = compare(plan, result.metrics)
                    session.runs.append(result)
                    session.updated_at = utc_now()
                    write_session(session, self.out_dir)
                    display.finish(result)
        except KeyboardInterrupt:
            session.state = "interrupted"
            self._conclude(session)
            raise
        session.state = "complete"
        self._conclude(session)
        return session

    def _conclude(self, session: Session) -> None:
        """Target plans, verdict and report: written with the results, re-renderable by `harness report`."""
        scenario = self.loaded.scenario
        if scenario.target is not None and session.architecture is not None:
            target = from_scenario(scenario.target, self.machine)
            session.target_plans = [plan_scenario_run(session.architecture, self.loaded, run, target)
                                    for run in self.loaded.runs]
        session.updated_at = utc_now()
        _, _, session.verdict = write_report(session, self.out_dir)
        write_session(session, self.out_dir)
