"""Capacity search: the largest lockstep batch (sessions) that stays real time, the server processes per machine
beside it (harness.session.processes: the stock deployment figure), and the cost per conversation-hour of each.

Sizes 1, 2, 4, ... are probed until one fails (or `max_sessions` passes), then the gap is bisected, so the result
names both the largest size that passed and the next size, which failed. A size the planner says cannot fit in
memory is recorded as memory-limited without running it. Each probe that runs is one worker process at that
batch measuring the scenario's frames, judged by the timing rule (`criteria.timing_only()`: p99 within the
deadline, no underrun, memory headroom); certification of the late-tick rate is reported beside it
(harness.stats.certify: certified or not, and how many more ticks would certify it), not mixed into it, so that a
short probe says "real time, not certified: N more ticks" instead of failing for being short.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import numpy as np

from harness.contract.wire import ArchitectureFacts
from harness.knowledge.prices import resolve_price
from harness.plan.capacity import gpu_table_bounds, memory_bound, session_cost
from harness.plan.planner import plan_run
from harness.plan.target import PlanTarget
from harness.records.capacity import (
    Admission,
    CapacityProbe,
    CapacityResult,
    CapacitySpec,
    CostLine,
    GpuSessions,
    LimitedBy,
    ProcessCapacity,
)
from harness.records.config import Device, RunConfig
from harness.records.scenario import Criteria
from harness.records.schema import RunResult, Session
from harness.session.processes import ProcessRunner, process_capacity
from harness.session.size_search import OutOfTime, late_certificate, timing_passed
from harness.session.size_search import search as size_search
from harness.stats.certify import clean_frames_to_certify
from harness.verdict.recommend import assess_run

OOM_KINDS = {"oom", "cuda_oom"}


def ticks_to_certify(criteria: Criteria) -> int:
    """Ticks with none late that certify the late-tick target at the confidence, late ticks coming in bursts of up
    to `burst_frames` (4590 for 1% at 99% in bursts of 10; 459 for independent ticks)."""
    return clean_frames_to_certify(criteria.burst_frames, criteria.late_frame_target, criteria.confidence)


# --- the search (pure: sizes in, probes out) --------------------------------------------------------------------

def search(max_sessions: int, fits: Callable[[int], Optional[str]],
           measure: Callable[[int], CapacityProbe]) -> tuple[list[CapacityProbe], int, LimitedBy]:
    """The lockstep search (size_search.search): a size the planner says cannot fit is recorded, not run."""
    return size_search(max_sessions, fits, measure,
                       lambda n, why: CapacityProbe(sessions=n, verdict="memory", ran=False, reasons=[why]))


# --- one probe: a measured RunResult judged by the verdict's rule ------------------------------------------------

def _peak_memory(result: RunResult) -> Optional[int]:
    m = result.metrics
    if m is None:
        return None
    return m.cuda.peak_allocated_bytes if m.cuda is not None else m.peak_rss_bytes


def judge(result: RunResult, sessions: int, session: Session, criteria: Criteria,
          predicted_bytes: Optional[int] = None) -> CapacityProbe:
    probe = CapacityProbe(sessions=sessions, verdict="failed", ran=True, predicted_memory_bytes=predicted_bytes)
    if result.status != "ok" or result.metrics is None:
        kind = result.diagnosis.kind if result.diagnosis else ""
        probe.verdict = "memory" if kind in OOM_KINDS else "failed"
        probe.reasons.append(result.diagnosis.cause if result.diagnosis else (result.reason or result.status))
        return probe
    m = result.metrics
    # The verdict's rule without its length and certification requirements, which are reported separately below.
    timing = criteria.timing_only()
    assessed = assess_run(result, session, timing)
    deadline = criteria.deadline_ms(m.frame_budget_ms)
    probe.ticks, probe.late_ticks = m.frames, sum(1 for ms in m.samples_ms if ms > deadline)
    probe.tick_p50_ms, probe.tick_p99_ms = m.ms_per_step.p50, m.ms_per_step.p99
    probe.peak_memory_bytes = _peak_memory(result)
    probe.certified, probe.ticks_to_certify = late_certificate([m.samples_ms], m.frame_budget_ms, criteria)
    passed, probe.reasons = timing_passed(assessed)
    over_memory = (assessed.memory_fraction is not None and assessed.memory_fraction > 1 - criteria.memory_headroom)
    probe.verdict = ("realtime" if passed else "disturbed" if assessed.rerun
                     else "memory" if over_memory and len(assessed.reasons) == 1 else "late")
    needed = ticks_to_certify(criteria)
    go_rule = assess_run(result, session, criteria)  # the GO rule itself: length and certification included
    probe.judged_by = ("the GO rule (p99, underruns, memory, certified late-tick rate)" if go_rule.realtime
                       else "p99 within the deadline only (the GO rule's timing part: p99, underruns, memory); "
                            f"its late-tick share not certified over {m.frames} ticks: "
                            + (f"{probe.ticks_to_certify} more would certify it" if probe.ticks_to_certify
                               else "more cannot at this late share" if not probe.certified else "see the reasons"))
    if probe.verdict == "realtime" and not probe.certified:
        probe.notes.append(f"real time over {m.frames} ticks but not certified: {needed} ticks with none late "
                           f"certify {criteria.late_frame_target:.0%} late at {criteria.confidence:.0%}"
                           + (f"; {probe.ticks_to_certify} more would" if probe.ticks_to_certify
                              else "; more ticks cannot at this late rate"))
    return probe


def admission(result: RunResult, deadline_ms: float, budget_ms: float, sessions: int) -> Optional[Admission]:
    """What the join cost the sessions already in the batch.

    Interleaved (a batching server): nobody stalls; the ticks that carried the joiner's prompt are measured ticks
    (their own figures here), and the joiner waits its prompt's steps, one per tick (its handshake). Serial (the
    worst case): the others get no frame during the reset and prefill, so their audio falls behind by the stall
    plus whatever the admitting tick itself takes past the deadline; in frame periods, rounded up (a jitter buffer
    of that many frames would hide it, at that much more latency)."""
    sample = result.metrics.admission if result.metrics is not None else None
    if sample is None:
        return None
    persona = sample.persona
    ticks = sample.tick_ms
    if sample.mode == "interleaved":
        steps = (f"{persona.voice_steps} voice, {persona.silence_steps} silence, {persona.text_steps} text steps"
                 if persona is not None else f"{sample.warmup_steps} neutral steps (no persona)")
        return Admission(slot=sample.slot, at_tick=sample.at_tick, warmup_steps=sample.warmup_steps,
                         reset_ms=sample.reset_ms, prefill_ms=0.0, stall_ms=sample.reset_ms, wait_ms=0.0,
                         step_p50_ms=float(np.median(ticks)) if ticks else None, others=max(0, sessions - 1),
                         frames_behind=int(np.ceil(max(0.0, max(ticks, default=0.0) - deadline_ms) / budget_ms))
                         if budget_ms else 0,
                         tick_ms=ticks, mode="interleaved", prompt_ticks=sample.prompt_ticks,
                         prompt_tick_p50_ms=float(np.median(ticks)) if ticks else None,
                         handshake_ms=sample.handshake_ms,
                         how=(f"interleaved, as a batching server steps a joiner: per-slot reset, then its persona "
                              f"prompt ({steps}) one step per tick inside {sample.prompt_ticks} of the batch's ticks "
                              "while the others stream"),
                         late_ticks=sum(1 for ms in ticks if ms > deadline_ms))
    stall = sample.reset_ms + sample.prefill_ms
    behind = stall + max(0.0, (ticks[0] if ticks else 0.0) - deadline_ms)
    how = ("serial (the worst case: no batching server stalls its batch like this): per-slot reset + the persona "
           "prefill the server runs for a new connection "
           f"({persona.voice_steps} voice, {persona.silence_steps} silence, {persona.text_steps} text steps, "
           f"each after a liveness wait: {persona.wait_s * 1e3 / max(1, len(persona.step_ms)):.0f} ms on average here)"
           if persona is not None else
           f"serial (the worst case): per-slot reset + {sample.warmup_steps} neutral warm-up steps (no persona)")
    return Admission(slot=sample.slot, at_tick=sample.at_tick, warmup_steps=sample.warmup_steps,
                     reset_ms=sample.reset_ms, prefill_ms=sample.prefill_ms, stall_ms=stall,
                     wait_ms=persona.wait_s * 1e3 if persona is not None else 0.0,
                     step_p50_ms=float(np.median(persona.step_ms)) if persona is not None and persona.step_ms else None,
                     others=max(0, sessions - 1), frames_behind=int(np.ceil(behind / budget_ms)) if budget_ms else 0,
                     tick_ms=ticks, how=how, mode="serial",
                     late_ticks=sum(1 for ms in ticks if ms > deadline_ms))


# --- the result ---------------------------------------------------------------------------------------------------

def memory_slope(probes: list[CapacityProbe]) -> Optional[int]:
    """Measured bytes per added session: least-squares slope of peak memory over the sizes that ran, from 2 sessions
    up when two such sizes ran: on the CPU going from 1 to 2 sessions added a one-off step of about two sessions'
    worth in every personaplex-tiny run measured (cause not established), which is not a per-session cost."""
    points = [(p.sessions, p.peak_memory_bytes) for p in probes if p.ran and p.peak_memory_bytes]
    batched = [(n, b) for n, b in points if n >= 2]
    if len({n for n, _ in batched}) >= 2:
        points = batched
    if len({n for n, _ in points}) < 2:
        return None
    x, y = np.array([n for n, _ in points], float), np.array([b for _, b in points], float)
    return int(np.polyfit(x, y, 1)[0])


def realtime_energy(joules_per_audio_s: float, sessions: int, *, paced: bool, tick_ms: Optional[float],
                    period_ms: float, idle_power_w: Optional[float]) -> tuple[Optional[float], str]:
    """Joules per conversation-second (numerically Wh per conversation-hour) at real-time pace, and how.

    A real-time server computes a frame, then idles until the next one's audio arrives: per frame period,
    energy = compute energy of the tick + idle power x (period - tick). A run measured at real-time pace has both
    in its energy already. A run measured back to back (pace fast) has only the first: the idle part needs the
    device's idle power (the worker's idle window), else the figure is left out rather than understated."""
    if sessions <= 0:
        return None, ""
    if paced:
        return joules_per_audio_s / sessions, "measured at real-time pace (idle between frames included)"
    if idle_power_w is None or tick_ms is None:
        return None, (f"{joules_per_audio_s:.1f} J per second of audio back to back; the idle power between frames "
                      "was not measured, so no real-time figure (it would understate the energy)")
    period_s, tick_s = period_ms / 1e3, tick_ms / 1e3
    per_period = joules_per_audio_s * period_s + idle_power_w * max(0.0, period_s - tick_s)
    return per_period / period_s / sessions, (f"compute energy of a {tick_ms:.1f} ms tick + idle power "
                                              f"{idle_power_w:.0f} W for the rest of each {period_ms:g} ms frame")


def cost_line(spec: CapacitySpec, option_usd: Optional[float], device_name: str, sessions: int,
              joules_per_audio_s: Optional[float], *, paced: bool = False, tick_ms: Optional[float] = None,
              period_ms: float = 80.0, idle_power_w: Optional[float] = None) -> Optional[CostLine]:
    price = resolve_price(device_name, spec.gpu_hour_usd, option_usd)
    if price is None:
        return None
    line = CostLine(gpu_hour_usd=price.usd_per_hour, price_source=price.source, sessions=sessions,
                    idle_power_w=idle_power_w)
    if sessions > 0:
        line.per_conversation_hour_usd = price.usd_per_hour / sessions
    if joules_per_audio_s is None:
        line.energy_note = "no energy counter here (NVML gives it on NVIDIA GPUs from Volta on)"
    elif sessions > 0:
        line.energy_j_per_audio_s = joules_per_audio_s
        line.energy_wh_per_conversation_hour, line.energy_note = realtime_energy(
            joules_per_audio_s, sessions, paced=paced, tick_ms=tick_ms, period_ms=period_ms,
            idle_power_w=idle_power_w)
    return line


class ProbeRunner(ProcessRunner, Protocol):
    """What the searches need from the session runner: a lockstep batch, and K server processes at once."""

    def probe(self, run: RunConfig, sessions: int) -> RunResult: ...


def summarize(probes: list[CapacityProbe], best: int, limited: LimitedBy, *, device: str, deadline_ms: float,
              bound: Optional[int], predicted_per_session: Optional[int]) -> CapacityResult:
    at_best = next((p for p in probes if p.sessions == best and p.ran), None)
    result = CapacityResult(max_realtime_sessions=best, limited_by=limited, device=device, deadline_ms=deadline_ms,
                            memory_bound_sessions=bound, memory_per_session_bytes=memory_slope(probes),
                            predicted_memory_per_session_bytes=predicted_per_session,
                            probes=sorted(probes, key=lambda p: p.sessions))
    if at_best is not None:
        result.tick_p50_ms, result.tick_p99_ms = at_best.tick_p50_ms, at_best.tick_p99_ms
        result.peak_memory_bytes = at_best.peak_memory_bytes
        if not at_best.certified:
            result.notes.append(f"{best} sessions: " + (at_best.notes[0] if at_best.notes else "not certified"))
    one = next((p.peak_memory_bytes for p in probes if p.ran and p.sessions == 1 and p.peak_memory_bytes), None)
    two = next((p.peak_memory_bytes for p in probes if p.ran and p.sessions == 2 and p.peak_memory_bytes), None)
    batched = {p.sessions for p in probes if p.ran and p.sessions >= 2 and p.peak_memory_bytes}
    if one and two and result.memory_per_session_bytes and len(batched) >= 2:
        result.notes.append(f"1 -> 2 sessions added {(two - one) / 2**20:.0f} MiB; the slope from 2 sessions up is "
                            f"{result.memory_per_session_bytes / 2**20:.1f} MiB per session")
    failing = [p for p in probes if p.sessions == best + 1]
    if failing:
        result.notes.append(f"{best + 1} sessions: {failing[0].verdict}"
                            + (f" ({failing[0].reasons[0]})" if failing[0].reasons else ""))
    return result


def device_label(run: RunConfig, session: Session) -> str:
    if run.device is Device.cuda and session.machine.gpus:
        return session.machine.gpus[0].name
    return session.machine.cpu_model


# --- orchestration: the runner's probes, the planner's bound, one RunResult with metrics.capacity ----------------

def capacity_run(runner: ProbeRunner, run: RunConfig, session: Session, criteria: Criteria, *,
                 note: Callable[[str], None], plan_target: Optional[PlanTarget] = None,
                 host_memory_limit_bytes: Optional[int] = None, option_usd: Optional[float] = None,
                 paced: bool = False, torch_threads: Optional[int] = None,
                 keep: Callable[[RunResult], None] = lambda partial: None) -> RunResult:
    """Search, then return the run measured at its largest real-time size (the batch-1 probe when none is),
    its metrics carrying the whole search in `metrics.capacity`, with the server-process figure beside it.

    Nothing measured is lost: `keep` gets the result so far after every probe (the runner writes it to disk), and
    an interrupt (Ctrl-C, SIGTERM) leaves on its way out, as `exc.kept`, the run with every finished probe
    (status failed, the search marked interrupted), for the runner to record in place of a bare failure."""
    spec = run.capacity or CapacitySpec()
    arch = session.architecture
    bound = per_session = None
    if arch is not None and plan_target is not None:
        bound = memory_bound(arch, run, plan_target, host_memory_limit_bytes=host_memory_limit_bytes)
        per_session = session_cost(arch, run, plan_target).bytes

    def predicted(n: int) -> Optional[int]:
        if arch is None or plan_target is None:
            return None
        plan = plan_run(arch, run, plan_target, batch=n, host_memory_limit_bytes=host_memory_limit_bytes)
        return plan.device_allocated_bytes if plan.device_allocated_bytes is not None else plan.host_peak_bytes

    def fits(n: int) -> Optional[str]:
        if bound is None or n <= bound:
            return None
        return f"the planner predicts {n} sessions do not fit in memory ({bound} do)"

    results: dict[int, RunResult] = {}
    stopped: list[str] = []
    done: list[CapacityProbe] = []  # every probe as it finishes, for `keep` and an interrupt
    deadline = criteria.deadline_ms(session.scenario.frame_budget_ms)

    def assemble(probes: list[CapacityProbe], best: int, limited: LimitedBy,
                 processes: Optional[ProcessCapacity]) -> RunResult:
        return _assemble(run, session, spec, probes, best, limited, results, stopped, processes, bound=bound,
                         per_session=per_session, deadline_ms=deadline, option_usd=option_usd, paced=paced)

    def measure(n: int) -> CapacityProbe:
        for attempt in (1, 2):  # a disturbed probe says nothing of the size: measured once more (the verdict's re-run)
            try:
                result = results[n] = runner.probe(run, n)
            except OutOfTime as stop:
                stopped.append(f"{n} sessions: {stop}")
                note(f"  capacity {run.name}: {n} session(s) not measured: {stop}")
                raise
            probe = judge(result, n, session, criteria, predicted(n))
            if probe.verdict != "disturbed" or attempt == 2:
                break
            note(f"  capacity {run.name}: {n} session(s) disturbed ({probe.reasons[0]}); measuring it again")
        budget = result.metrics.frame_budget_ms if result.metrics else 0.0
        probe.admission = admission(result, criteria.deadline_ms(budget), budget, n)
        note(f"  capacity {run.name}: {n} session(s) {probe.verdict}"
             + (f", tick p99 {probe.tick_p99_ms:.1f} ms" if probe.tick_p99_ms is not None else "")
             + (f" ({probe.reasons[0]})" if probe.reasons else ""))
        done.append(probe)
        keep(running(assemble(done, best_so_far(done), "interrupted", None)))
        return probe

    processes: list[ProcessCapacity] = []  # the process search so far (its latest state)
    searched: list[tuple[list[CapacityProbe], int, LimitedBy]] = []  # the lockstep search, once finished
    try:
        probes, best, limited = search(spec.max_sessions, fits, measure)
        searched.append((probes, best, limited))
        if not results:  # not even one session fits: nothing ran, and one process would not fit either
            return assemble(probes, best, limited, None)

        def kept_processes(so_far: ProcessCapacity) -> None:
            processes[:] = [so_far]
            keep(running(assemble(probes, best, limited, so_far)))

        out = assemble(probes, best, limited, process_capacity(
            runner, run, session, criteria, spec=spec, single=results.get(1), deadline_ms=deadline,
            torch_threads=torch_threads, note=note, keep=kept_processes))
    except KeyboardInterrupt as exc:
        lockstep = searched[0] if searched else (done, best_so_far(done), "interrupted")
        partial = assemble(*lockstep, processes[0] if processes else None)
        why = getattr(exc, "reason", "interrupted by the user (Ctrl-C)")
        exc.kept = partial.model_copy(update={  # type: ignore[attr-defined]
            "status": "interrupted", "reason": f"{why}: the capacity search was stopped; every finished probe is kept"})
        raise
    return out


def running(partial: RunResult) -> RunResult:
    """A search's result so far as written while it runs: not ok (never judged, never reused by --resume) until
    the search ends; a hard kill leaves it so, with every probe that finished."""
    return partial.model_copy(update={"status": "failed", "reason": "capacity search still running when written: "
                                                                    "every finished probe is kept"})


def best_so_far(probes: list[CapacityProbe]) -> int:
    """The largest size that passed below every size that failed: what an unfinished search has shown."""
    ceiling = min((p.sessions for p in probes if p.verdict != "realtime"), default=None)
    return max((p.sessions for p in probes if p.verdict == "realtime" and (ceiling is None or p.sessions < ceiling)),
               default=0)


def _assemble(run: RunConfig, session: Session, spec: CapacitySpec, probes: list[CapacityProbe], best: int,
              limited: LimitedBy, results: dict[int, RunResult], stopped: list[str],
              processes: Optional[ProcessCapacity], *, bound: Optional[int], per_session: Optional[int],
              deadline_ms: float, option_usd: Optional[float], paced: bool) -> RunResult:
    """The run at the search's largest real-time size, carrying the search (and the process figure) in
    `metrics.capacity`; also what an unfinished search has shown so far (limited by `interrupted`)."""
    arch = session.architecture
    chosen = results.get(best) or results.get(1) or next(iter(results.values()), None)
    summary = summarize(probes, best, limited, device=device_label(run, session), deadline_ms=deadline_ms,
                        bound=bound, predicted_per_session=per_session)
    summary.notes.extend(f"search stopped: {why}; {best} session(s) is a lower bound" for why in stopped)
    if limited == "interrupted":
        summary.notes.append(f"search interrupted after {len(probes)} probe(s): {best} session(s) is a lower bound")
    if chosen is None:  # only possible when even one session cannot fit: nothing ran
        out = RunResult(name=run.name, config=run.model_copy(update={"batch_size": 1}), status="skipped",
                        reason="capacity: " + (probes[0].reasons[0] if probes and probes[0].reasons else "nothing ran"))
        return out
    out = chosen.model_copy(update={"name": run.name, "config": run.model_copy(update={"batch_size": best or 1})})
    if out.metrics is None:
        out.reason = f"capacity search: {out.reason}"
        return out
    budget = out.metrics.frame_budget_ms
    telemetry = out.metrics.telemetry_summary
    summary.cost = cost_line(spec, option_usd, summary.device, best,
                             telemetry.joules_per_audio_second if telemetry else None, paced=paced,
                             tick_ms=float(np.mean(out.metrics.samples_ms)) if out.metrics.samples_ms else None,
                             period_ms=budget, idle_power_w=telemetry.idle_power_w if telemetry else None)
    at_best = next((p for p in probes if p.sessions == best and p.ran), None)
    judged = at_best or next((p for p in probes if p.ran), None)  # none passed: the rule the first probe failed by
    summary.judged_by = judged.judged_by if judged is not None else ""
    summary.processes = processes
    if summary.processes is not None:
        summary.processes.cost = _process_cost(summary.processes, spec, option_usd, summary.device, budget)
    if arch is not None:
        summary.predicted_gpus = predicted_gpus(arch, run, session, deadline_ms)
    out.metrics = out.metrics.model_copy(update={"capacity": summary})
    return out


def _process_cost(processes: ProcessCapacity, spec: CapacitySpec, option_usd: Optional[float], device: str,
                  budget_ms: float) -> Optional[CostLine]:
    """Price / processes; energy from the measured processes (real-time pace: idle included), whole device."""
    k = processes.max_realtime_processes
    joules = None
    probe = next((p for p in processes.probes if p.processes == k and p.ran), None)
    if probe is not None and probe.joules_per_audio_s is not None:
        joules = probe.joules_per_audio_s
    return cost_line(spec, option_usd, device, k, joules, paced=True, period_ms=budget_ms)


def predicted_gpus(arch: ArchitectureFacts, run: RunConfig, session: Session, deadline_ms: float) -> list[GpuSessions]:
    """The planner's memory-bound sessions of this run's configuration on every GPU of the table."""
    return [GpuSessions(gpu=b.gpu or b.target, vram_bytes=b.capacity_bytes or 0, sessions_by_memory=b.max_sessions,
                        per_session_bytes=b.per_session.bytes, fixed_bytes=b.fixed_bytes,
                        floor_ms_at_max=b.floor_ms_at_max, sessions_by_floor=b.realtime_by_floor,
                        processes_by_memory=b.processes_by_memory)
            for b in gpu_table_bounds(arch, run, session.machine, deadline_ms=deadline_ms,
                                      memory_headroom=session.scenario.criteria.memory_headroom)]
