"""Run every configuration of a scenario, one worker process each (or `repeat` of them); results on disk after
every run; then the verdict, decided here and handed to the report to render."""

from __future__ import annotations

import math
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from rich.console import Console

from harness import __version__
from harness.contract.environment import measurement_env
from harness.contract.presets import GRAPH_WARMUP_FRAMES
from harness.contract.stopping import EarlyStop
from harness.contract.wire import BenchJob, BenchReply, PersonaJob, ProgressEvent, to_json
from harness.launcher.environment import worker_env
from harness.launcher.spawn import run_worker
from harness.plan.planner import compare, plan_scenario_run
from harness.plan.target import from_machine, from_scenario
from harness.probe.machine import probe_machine
from harness.records.config import Device, RunConfig
from harness.records.endpoint import EndpointResults
from harness.records.exits import UserError
from harness.records.identity import Measurement, measurement_of
from harness.records.plan import RunPlan
from harness.records.scenario import Pace
from harness.records.schema import Machine, RunResult, Session, utc_now
from harness.records.store import write_session
from harness.records.validate import parse_wire
from harness.report.render import write_report
from harness.scenario.load import LoadedScenario
from harness.session import assemble, capacity
from harness.session.display import RunDisplay
from harness.session.processes import ProcessBatch
from harness.session.resume import plan_resume, scenario_order
from harness.session.run_rules import (
    Skip,
    default_timeout_s,
    frames_to_measure,
    resolve_devices,
    skip_reason,
    worker_run,
)
from harness.session.size_search import OutOfTime
from harness.verdict.endpoint import with_endpoint
from harness.verdict.recommend import decide

WORK_DIR = ".work"
LOG_DIR = "logs"
IDLE_WINDOW_S = 1.0  # capacity runs on a GPU: idle sampling after warmup, for the power between frames


class _Quiet:
    """The display of a worker that runs beside others (server processes measured together): no live line."""

    def event(self, event: ProgressEvent) -> None:
        pass


@dataclass(frozen=True)
class WorkerHooks:
    """Callbacks for whoever embeds the runner (tests, tools): worker started, worker event."""

    started: Callable[[str, int], None] = lambda run_name, pid: None
    event: Callable[[str, ProgressEvent], None] = lambda run_name, event: None


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
        self.hooks = hooks or WorkerHooks()
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
        self._deadline: Optional[float] = None  # time.monotonic() at which --time-limit runs out

    def time_left(self) -> Optional[float]:
        """Seconds left under --time-limit (None: no limit)."""
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _out_of_time(self) -> Optional[str]:
        left = self.time_left()
        if left is None or left > 0:
            return None
        return f"not started: the session's --time-limit of {self.options.time_limit_s:g} s was reached"

    def _job(self, run: RunConfig, work: Path, env: dict[str, str], frames: Optional[int] = None,
             barrier: Optional[Path] = None, paced: bool = False, fidelity: bool = False) -> BenchJob:
        s = self.loaded.scenario
        frames = frames or self.frames
        # Server processes measured together run at real-time pace whatever the scenario's: a server's frames
        # come as the audio arrives, and K processes share the machine between frames. A confirmation run
        # (`paced`) is paced too.
        paced = paced or s.pace is Pace.realtime or barrier is not None
        batch = run.batch_size or s.batch_size
        join = run.capacity.join if run.capacity is not None and batch > 1 else None
        return BenchJob(run=worker_run(run), preset=s.preset,
                        weights_path=str(self.loaded.weights_path) if self.loaded.weights_path else None,
                        join_at_tick=(join.at_tick or frames // 2) if join else None,
                        join_warmup_steps=join.warmup_steps if join else 0,
                        frames=frames, warmup_frames=self.warmup_for(run), batch_size=batch,
                        torch_threads=s.torch_threads, seed=s.seed, scratch_dir=str(work / "scratch"),
                        paced_frame_ms=s.frame_budget_ms if paced else None,
                        telemetry_hz=s.telemetry_hz, reply_path=str(work / "reply.json"),
                        env=measurement_env(env), serving=run.serving.value, persona=self._persona(),
                        start_barrier=str(barrier) if barrier is not None else None,
                        barrier_timeout_s=self._timeout(run),
                        # capacity runs price energy at real-time pace: the device's power between frames
                        idle_window_s=IDLE_WINDOW_S if run.capacity is not None and run.device is Device.cuda else 0.0,
                        stop=self._early_stop(run, frames) if barrier is None else None,
                        input_wav=None if s.input == "synthetic" else s.input,
                        # as many frames as the timed run, up to the scenario's: a 3-frame smoke compares 3
                        fidelity_frames=min(s.fidelity.frames, frames) if fidelity else 0)

    def _early_stop(self, run: RunConfig, frames: int) -> Optional[EarlyStop]:
        """Stop a run once it is certainly not real time (harness.contract.stopping); not a capacity probe, whose
        joining caller comes half-way through, nor processes measured together (they share a start barrier)."""
        if run.capacity is not None:
            return None
        s = self.loaded.scenario
        c = s.criteria
        return EarlyStop(deadline_ms=c.deadline_ms(s.frame_budget_ms), block_frames=c.burst_frames,
                         target=c.late_frame_target, confidence=c.confidence, min_frames=c.min_frames, frames=frames)

    def warmup_for(self, run: RunConfig) -> int:
        """The warmup asked for, raised with CUDA graphs on so that no capture lands in a measured frame."""
        return max(self.warmup, GRAPH_WARMUP_FRAMES) if run.cuda_graphs else self.warmup

    def _persona(self) -> Optional[PersonaJob]:
        persona = self.loaded.scenario.effective_persona
        if persona is None:
            return None
        # paths were made absolute when the scenario was loaded
        return PersonaJob(voice_prompt_frames=persona.voice_prompt_frames, voice_prompt_wav=persona.voice_prompt,
                          silence_frames=persona.silence_frames, text_prompt_tokens=persona.text_prompt_tokens,
                          text_prompt=persona.text_prompt, tokenizer=persona.tokenizer,
                          server_wait_ms=persona.server_wait_ms)

    def _process(self, run: RunConfig, display: "RunDisplay | _Quiet", index: int,
                 frames: Optional[int] = None, barrier: Optional[Path] = None,
                 timeout_s: Optional[float] = None, paced: bool = False) -> assemble.ProcessOutcome:
        repeat = self.loaded.scenario.repeat
        label = run.name if repeat == 1 or barrier is not None else f"{run.name}.{index + 1}"
        label += ".realtime" if paced else ""  # a confirmation run keeps its own folder
        work = self.out_dir / WORK_DIR / label
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        env = worker_env(run, self.loaded.scenario.torch_threads)
        # Fidelity once per configuration: its first process, not a confirmation, a capacity probe or K servers.
        fidelity = index == 0 and not paced and barrier is None and run.capacity is None
        job = self._job(run, work, env, frames, barrier, paced, fidelity)
        (work / "job.json").write_text(to_json(job))

        def on_event(event: ProgressEvent) -> None:
            display.event(event)
            self.hooks.event(run.name, event)

        timeout_s = self._timeout(run) if timeout_s is None else timeout_s
        outcome = run_worker(work / "job.json", env, timeout_s, self.out_dir / LOG_DIR, label,
                             on_event=on_event, on_start=lambda pid: self.hooks.started(run.name, pid),
                             memory_limit_bytes=self.loaded.scenario.host_memory_limit_bytes,
                             python=run.python or sys.executable)
        reply: Optional[BenchReply] = None
        reply_error = ""
        try:
            reply = parse_wire(BenchReply, Path(job.reply_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass  # the worker died before replying: its exit code and stderr tell why
        except (OSError, ValueError) as exc:  # WireError is a ValueError: keep its named message for the record
            reply_error = str(exc)
        shutil.rmtree(work / "scratch", ignore_errors=True)  # offloaded weights can be gigabytes
        return assemble.ProcessOutcome(outcome, reply, reply_error)

    def _timeout(self, run: RunConfig) -> float:
        configured = self.options.timeout_s or run.timeout_s or self.timeout_s
        left = self.time_left()
        return configured if left is None else max(1.0, min(configured, left))

    def _execute(self, run: RunConfig, display: RunDisplay, frames: Optional[int] = None,
                 paced: bool = False) -> RunResult:
        started = utc_now()
        processes = []
        for index in range(self.loaded.scenario.repeat):
            timeout_s = self._timeout(run)  # cut to the time left under --time-limit as each process starts
            processes.append(self._process(run, display, index, frames, timeout_s=timeout_s, paced=paced))
            if not processes[-1].ok:
                break  # a configuration that failed once is reported, not retried
        return assemble.from_workers(run, processes, frame_budget_ms=self.loaded.scenario.frame_budget_ms,
                                     warmup_frames=self.warmup_for(run), timeout_s=timeout_s, started_at=started,
                                     machine=self.machine)

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

    def _measurement(self, run: RunConfig, session: Session) -> Measurement:
        return measurement_of(session.scenario, run, weights=session.weights, frames=self.frames,
                              warmup=self.warmup_for(run), software=session.machine.packages,
                              env=measurement_env(worker_env(run, self.loaded.scenario.torch_threads)))

    def _resolve_all(self, runs: list[RunConfig]) -> list[tuple[RunConfig, Optional[str]]]:
        return resolve_devices(runs, self.machine)

    def _one(self, run: RunConfig, auto_skip: Optional[str], session: Session, display: RunDisplay) -> RunResult:
        assert self.machine is not None
        key = self._measurement(run, session).key()
        reused = self._reusable(run, session)
        if reused is not None:
            display.note(f"{run.name}: measured before with the same configuration on this machine (--resume)")
            return reused.model_copy(update={"resumed": True})
        plan = self._plan(run, session)
        skip = Skip(auto_skip) if auto_skip else skip_reason(run, self.machine, plan)
        if skip is not None and self.options.force and skip.forceable:
            skip = None
        if (skip is not None and run.capacity is not None and plan is not None and not plan.fits_memory
                and not any(i.severity == "blocker" for i in plan.issues)):
            skip = None  # the capacity search records each size the planner says cannot fit, without running it
        late = self._out_of_time() if skip is None else None
        if late is not None:
            skip = Skip(late)
        if skip is not None:
            result = assemble.skipped(run, skip.reason)
            if auto_skip is not None:
                result.diagnosis = assemble.diagnose(run, error_message=self.machine.cuda_unavailable_reason,
                                                     machine=self.machine)
        else:
            display.start(run.name, run.describe())
            try:
                result = self._capacity(run, session, display) if run.capacity else self._execute(run, display)
            except KeyboardInterrupt as exc:
                why = getattr(exc, "reason", "interrupted by the user (Ctrl-C)")
                session.runs.append(RunResult(name=run.name, config=run, status="failed",
                                              reason=f"{why}: the worker was stopped with its process group",
                                              measurement_key=key))
                raise
        result.measurement_key = key
        if run.capacity is not None and result.config.batch_size:
            plan = self._plan(result.config, session)  # the plan of the size the search settled on
        result.plan = plan
        if plan is not None and result.metrics is not None:
            result.plan_check = compare(plan, result.metrics)
        return result

    def _capacity(self, run: RunConfig, session: Session, display: RunDisplay) -> RunResult:
        """A capacity search (harness.session.capacity): probes are this runner's worker runs at each size."""
        scenario = self.loaded.scenario
        frames = self.options.frames or max(self.frames, capacity.ticks_to_certify(scenario.criteria))
        runner = self

        class Probes:
            def probe(self, probe_run: RunConfig, sessions: int) -> RunResult:
                late = runner._out_of_time()
                if late is not None:
                    raise OutOfTime(late)
                sized = probe_run.model_copy(update={"name": f"{probe_run.name}.s{sessions}", "batch_size": sessions})
                result = runner._execute(sized, display, frames)
                if result.status != "ok" and runner._out_of_time() is not None:
                    raise OutOfTime(f"stopped at the session's --time-limit of {runner.options.time_limit_s:g} "
                                    f"s ({result.reason or result.status})")
                return result

            def processes(self, probe_run: RunConfig, count: int) -> ProcessBatch:
                late = runner._out_of_time()
                if late is not None:
                    raise OutOfTime(late)
                # At real-time pace a frame takes the whole budget: the scenario's frames, not the 459 that
                # certify (judged by p99 and said so unless they are that many).
                return runner._together(probe_run, count, runner.options.frames or runner.frames)

        return capacity.capacity_run(Probes(), run, session, scenario.criteria, note=display.note,
                                     plan_target=from_machine(self.machine) if self.machine else None,
                                     host_memory_limit_bytes=scenario.host_memory_limit_bytes,
                                     option_usd=self.options.gpu_hour_usd, paced=scenario.pace is Pace.realtime,
                                     torch_threads=scenario.torch_threads)

    def _together(self, run: RunConfig, count: int, frames: int) -> ProcessBatch:
        """`count` one-call server processes (batch 1) at once: each its own worker, started together by a barrier
        after warmup (the parent writes `go` once all are ready, or once the rest can no longer get there)."""
        barrier = self.out_dir / WORK_DIR / f"{run.name}.p{count}.barrier"
        shutil.rmtree(barrier, ignore_errors=True)
        barrier.mkdir(parents=True)
        runs = [run.model_copy(update={"name": f"{run.name}.p{count}.{i + 1}", "batch_size": 1, "capacity": None})
                for i in range(count)]
        outcomes: list[Optional[assemble.ProcessOutcome]] = [None] * count
        started = utc_now()

        def one(i: int) -> None:
            outcomes[i] = self._process(runs[i], _Quiet(), 0, frames, barrier)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
        for thread in threads:
            thread.start()
        together = True
        while any(t.is_alive() for t in threads):
            ready = len(list(barrier.glob("ready.*")))
            gone = sum(1 for t in threads if not t.is_alive())  # ended before the barrier: it cannot come
            if ready + gone >= count and not (barrier / "go").exists():
                together = gone == 0
                (barrier / "go").touch()
            time.sleep(0.05)
        for thread in threads:
            thread.join()
        results = [assemble.from_workers(runs[i], [o], frame_budget_ms=self.loaded.scenario.frame_budget_ms,
                                         warmup_frames=self.warmup, timeout_s=self._timeout(runs[i]),
                                         started_at=started, machine=self.machine)
                   for i, o in enumerate(outcomes) if o is not None]
        together &= all(o is not None and o.reply is not None and o.reply.barrier_released is not False
                        for o in outcomes)
        shutil.rmtree(barrier, ignore_errors=True)
        return ProcessBatch(results=results, together=together)

    def run(self, runs: list[RunConfig]) -> Session:
        now = utc_now()
        if self.options.time_limit_s is not None:
            self._deadline = time.monotonic() + self.options.time_limit_s
        self.console.print("probing this machine (torch in a separate process) ...", highlight=False)
        probe = probe_machine(self.out_dir / WORK_DIR / "probe", presets=[self.loaded.scenario.preset],
                              disk_path=self.out_dir, cpu_stages=any(run.device is Device.cpu for run in runs),
                              cpu_threads=self.loaded.scenario.torch_threads or 0)
        self.machine = probe.machine
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
        try:
            with RunDisplay(self.console, len(runs)) as display:
                for run, auto_skip in self._resolve_all(runs):
                    result = self._one(run, auto_skip, session, display)
                    session.runs = [r for r in session.runs if r.name != result.name] + [result]
                    session.updated_at = utc_now()
                    write_session(session, self.out_dir)
                    display.finish(result)
                self._confirm(session, display)
            self._endpoint()
        except KeyboardInterrupt:
            session.state = "interrupted"
            self._conclude(session)
            raise
        session.state = "complete"
        self._conclude(session)
        return session

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
                                         not_started=self._out_of_time())

    def confirm_frames(self) -> int:
        """Frames of the confirmation run: the scenario's, else enough for the criteria's length (not for the
        certificate, which the fast run gave)."""
        s = self.loaded.scenario
        if s.confirm_frames is not None:
            return s.confirm_frames
        c = s.criteria
        return max(c.min_frames, math.ceil(c.min_seconds * 1000.0 / s.frame_budget_ms - 1e-9))

    def _confirm(self, session: Session, display: RunDisplay) -> None:
        """A GO found at pace: fast is run again, paced like a call (harness.verdict.confirm), unless the scenario
        says `confirm_frames: 0`; the verdict then says it was not confirmed."""
        scenario = self.loaded.scenario
        frames = self.confirm_frames()
        if scenario.pace is not Pace.fast or frames == 0 or self._out_of_time() is not None:
            return  # the verdict then says the GO was not confirmed
        verdict = decide(session, scenario.criteria)
        best = next((r for r in session.runs if verdict.go and r.name == verdict.ranked[0]), None)
        if best is None or best.resumed or best.config.capacity is not None:
            return  # a capacity search's GO stands for its lockstep batch, not a single paced call
        display.note(f"{best.name}: GO at pace fast; confirming at pace realtime ({frames} frames, "
                     f"{frames * scenario.frame_budget_ms / 1e3:.0f} s)")
        display.start(best.name, "confirmation at pace: realtime")
        session.confirmation = self._execute(best.config, display, frames, paced=True)
        write_session(session, self.out_dir)
        display.finish(session.confirmation)

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
