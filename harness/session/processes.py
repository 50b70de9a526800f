"""Server processes per machine: the stock deployment figure beside the lockstep one.

NVIDIA's PersonaPlex server and PyPI moshi's server serve one call per process (behind a lock), so a machine
holds as many calls as it holds such processes. Measured: K workers at batch 1 run at once, each at real-time
pace (a frame every budget, as audio arrives), started together by a barrier after their warmup, each running
its own call's persona prefill; K is real time when every process is (the p99 rule; certification reported
beside it). Predicted where not measured: from one process's memory and its measured step time, said so.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import psutil

from harness.records.capacity import CapacitySpec, ProcessCapacity, ProcessProbe
from harness.records.config import Device, RunConfig
from harness.records.scenario import Criteria
from harness.records.schema import RunResult, Session
from harness.session.size_search import late_certificate, search, timing_passed
from harness.verdict.recommend import assess_run


@dataclass
class ProcessBatch:
    results: list[RunResult]  # one per process, in start order
    together: bool  # every process reached the start barrier before `go`: their calls overlapped


class ProcessRunner(Protocol):
    def processes(self, run: RunConfig, count: int) -> ProcessBatch: ...


STOP_GRACE_S = 3.0  # SIGTERM, then SIGKILL: a worker holding GPU memory must not outlive the interrupt


def stop_workers(jobs: list[Path], threads: list[threading.Thread]) -> None:
    """Stop the K workers of a probe on an interrupt: Ctrl-C or SIGTERM reaches the main thread only, while each
    worker is watched by a thread of its own that would let it run on, holding its memory. Each worker runs in its
    own session (harness.launcher.spawn), so its process group goes: SIGTERM, then SIGKILL after a grace."""
    wanted = {str(job) for job in jobs}
    workers = []
    for child in psutil.Process().children(recursive=False):
        try:
            if wanted & set(child.cmdline()):
                workers.append(child)
        except psutil.Error:
            continue  # already gone
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for worker in workers:
            try:
                os.killpg(worker.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        _, workers = psutil.wait_procs(workers, timeout=STOP_GRACE_S)
        if not workers:
            break
    ends = time.monotonic() + STOP_GRACE_S
    for thread in threads:  # each watcher sees its worker gone and returns
        thread.join(timeout=max(0.0, ends - time.monotonic()))


def _peak(result: RunResult, alone: bool = True) -> Optional[int]:
    """One process's memory: host peak RSS, or on a GPU what the driver saw used (CUDA context included) when the
    process ran alone; beside others the device total counts them too, so the allocator's reserved peak."""
    m = result.metrics
    if m is None:
        return None
    if m.cuda is not None:
        return (m.cuda.device_used_bytes if alone else None) or m.cuda.peak_reserved_bytes
    return m.peak_rss_bytes


def judge_processes(batch: ProcessBatch, count: int, session: Session, criteria: Criteria) -> ProcessProbe:
    """K is real time when every process is: p99 within the deadline, no underrun, memory (the timing part of
    the GO rule); certification of each process's late-frame rate is reported beside it."""
    probe = ProcessProbe(processes=count, verdict="failed", ran=True, together=batch.together)
    results = batch.results
    failed = [r for r in results if r.status != "ok" or r.metrics is None]
    if failed or len(results) != count:
        oom = any(r.diagnosis is not None and r.diagnosis.kind in ("oom", "cuda_oom") for r in failed)
        probe.verdict = "memory" if oom else "failed"
        probe.reasons += [f"{r.name}: " + (r.diagnosis.cause if r.diagnosis else (r.reason or r.status))
                          + (f" ({len(r.partial_samples_ms)} frames received before it ended, warmup included, "
                             f"slowest {max(r.partial_samples_ms):.0f} ms)" if r.partial_samples_ms else "")
                          for r in failed][:3]
        return probe
    timing = criteria.timing_only()
    realtime, disturbed = True, False
    for r in results:
        m = r.metrics
        assert m is not None
        assessed = assess_run(r, session, timing)
        deadline = criteria.deadline_ms(m.frame_budget_ms)
        probe.late_frames += sum(1 for ms in m.samples_ms if ms > deadline)
        probe.late_starts += m.late_start_frames
        passed, reasons = timing_passed(assessed)
        realtime &= passed
        # Only one process alone can be excused by a disturbance: beside K - 1 others, "other processes used the
        # CPU" counts its siblings, whose contention is exactly what the probe measures.
        disturbed |= assessed.rerun and count == 1
        probe.reasons += [f"{r.name}: {why}" for why in reasons]
    metrics = [r.metrics for r in results if r.metrics is not None]
    # One certificate over every process's frames (a segment each): the late share of K calls served together.
    certified, probe.frames_to_certify = late_certificate([m.samples_ms for m in metrics], metrics[0].frame_budget_ms,
                                                          criteria)
    probe.frames = min(m.frames for m in metrics)
    probe.step_p50_ms = sorted(m.ms_per_step.p50 for m in metrics)[len(metrics) // 2]
    probe.step_p99_ms = max(m.ms_per_step.p99 for m in metrics)
    peaks = [p for p in (_peak(r, alone=count == 1) for r in results) if p]
    probe.peak_memory_bytes = max(peaks) if peaks else None
    probe.certified = certified
    joules = [m.telemetry_summary.joules_per_audio_second for m in metrics
              if m.telemetry_summary is not None and m.telemetry_summary.joules_per_audio_second is not None]
    probe.joules_per_audio_s = sum(joules) / len(joules) if joules else None
    probe.verdict = "realtime" if realtime else "disturbed" if disturbed else "late"
    if count > 1 and not realtime and any("disturbed" in why for why in probe.reasons):
        probe.notes.append(f"judged late, not disturbed: the CPU the {count} processes took from each other is what "
                           "this probe measures, and the disturbance rule cannot tell it from another process's")
    if not probe.together:
        probe.notes.append("a process waited past the start barrier's timeout: the calls did not all overlap")
    if realtime and not certified:
        probe.notes.append(f"real time over {probe.frames} frames per process, not certified by the GO rule"
                           + (f": {probe.frames_to_certify} more frames (all processes together) would certify it"
                              if probe.frames_to_certify else ": more frames cannot at this late rate"))
    return probe


def memory_capacity(run: RunConfig, session: Session) -> Optional[int]:
    """What K processes share: the GPU's memory, or the host's RAM."""
    if run.device is Device.cuda:
        gpus = session.machine.gpus
        return gpus[0].memory_total_bytes if gpus else None
    return session.machine.ram_total_bytes or None


def predict(run: RunConfig, session: Session, criteria: Criteria, *, single: Optional[RunResult],
            deadline_ms: float, torch_threads: Optional[int]) -> tuple[Optional[int], Optional[int], Optional[int],
                                                                        Optional[float], str]:
    """(by memory, by time, one process's bytes, its step p99 ms, the rule in words) from one measured process.
    By memory: K processes of one process's peak within the memory less the headroom. By time: frames of K
    processes arriving together queue on the device: a GPU runs one process's kernels at a time (no MPS), so K
    steps must fit in the deadline; on a CPU, cores / threads per process run side by side."""
    if single is None or single.metrics is None:
        return None, None, None, None, "no single-process measurement to predict from"
    per = _peak(single)
    capacity = memory_capacity(run, session)
    by_memory = int(capacity * (1 - criteria.memory_headroom) // per) if per and capacity else None
    step = single.metrics.ms_per_step.p99
    if run.device is Device.cuda:
        lanes, lane_words = 1, "one GPU, processes time-sliced"
    else:
        threads = max(1, torch_threads or session.machine.cpu_cores_logical)
        lanes = max(1, session.machine.cpu_cores_logical // threads)
        lane_words = f"{session.machine.cpu_cores_logical} cores / {threads} thread(s) per process = {lanes} at once"
    by_time = lanes * int(deadline_ms // step) if step > 0 else None
    rule = (f"predicted, not measured: by memory {by_memory} ({(per or 0) / 2**20:.0f} MiB per process, "
            f"{criteria.memory_headroom:.0%} kept free); by time {by_time} (step p99 {step:.1f} ms at batch 1, "
            f"deadline {deadline_ms:g} ms, {lane_words}; assumes no slowdown beyond queueing)")
    return by_memory, by_time, per, step, rule


def process_capacity(runner: ProcessRunner, run: RunConfig, session: Session, criteria: Criteria, *,
                     spec: CapacitySpec, single: Optional[RunResult], deadline_ms: float,
                     torch_threads: Optional[int], note: Callable[[str], None],
                     keep: Callable[[ProcessCapacity], None] = lambda so_far: None) -> Optional[ProcessCapacity]:
    """The server-process figure, measured (or predicted); `keep` gets the figure so far after every K probe, for
    the runner to write (an interrupted search keeps every finished probe)."""
    if spec.processes == "off":
        return None
    max_k = spec.max_processes or spec.max_sessions
    by_memory, by_time, per, step, rule = predict(run, session, criteria, single=single, deadline_ms=deadline_ms,
                                                  torch_threads=torch_threads)
    out = ProcessCapacity(max_realtime_processes=0, how="predicted", limited_by="failed",
                          per_process_bytes=per, capacity_bytes=memory_capacity(run, session), step_ms=step,
                          predicted_by_memory=by_memory, predicted_by_time=by_time, prediction_rule=rule)
    if spec.processes == "predict":
        known = [(v, why) for v, why in ((by_memory, "memory"), (by_time, "time")) if v is not None]
        if not known:
            out.notes.append(rule)
            return out
        value, why = min(known)
        out.max_realtime_processes = min(value, max_k)
        out.limited_by = "max_sessions" if value > max_k else why  # type: ignore[assignment]
        out.judged_by = "predicted, not measured (not judged by the GO rule)"
        return out

    def fits(k: int) -> Optional[str]:
        if by_memory is None or k <= by_memory:
            return None
        return f"predicted not to fit: {k} processes of {per / 2**20:.0f} MiB" if per else "predicted not to fit"

    done: list[ProcessProbe] = []

    def measure(k: int) -> ProcessProbe:
        probe = judge_processes(runner.processes(run, k), k, session, criteria)
        if probe.verdict == "disturbed":  # the machine's, not the processes': measured once more (the re-run)
            note(f"  capacity {run.name}: {k} server process(es) disturbed ({probe.reasons[0]}); measuring again")
            probe = judge_processes(runner.processes(run, k), k, session, criteria)
        note(f"  capacity {run.name}: {k} server process(es) {probe.verdict}"
             + (f", worst p99 {probe.step_p99_ms:.1f} ms" if probe.step_p99_ms is not None else "")
             + (f" ({probe.reasons[0]})" if probe.reasons else ""))
        done.append(probe)
        ceiling = min((p.processes for p in done if p.verdict != "realtime"), default=None)
        best = max((p.processes for p in done if p.verdict == "realtime" and (ceiling is None or p.processes < ceiling)),
                   default=0)
        keep(out.model_copy(update={"how": "measured", "max_realtime_processes": best, "limited_by": "interrupted",
                                    "probes": sorted(done, key=lambda p: p.processes),
                                    "notes": [f"search interrupted after {len(done)} K probe(s): {best} is a lower "
                                              "bound"]}))
        return probe

    probes, best, limited = search(max_k, fits, measure,
                                   lambda k, why: ProcessProbe(processes=k, verdict="memory", ran=False, reasons=[why]))
    out.how, out.max_realtime_processes, out.limited_by = "measured", best, limited
    out.probes = sorted(probes, key=lambda p: p.processes)
    at_best = next((p for p in probes if p.processes == best and p.ran), None)
    frames = max((p.frames for p in probes if p.ran), default=0)
    out.judged_by = ("the GO rule: p99 within the deadline and every process's late-frame rate certified"
                     if at_best is not None and at_best.certified
                     else "p99 within the deadline only (the GO rule's timing part), not certified by the GO rule "
                          f"({frames} frames per process)")
    out.notes.append(f"measured: K worker processes at batch 1 started together after warmup, each at real-time pace "
                     f"(a frame every {session.scenario.frame_budget_ms:g} ms) with its own call's "
                     "persona prefill; " + rule.replace("predicted, not measured: ", "the prediction would say: "))
    if by_memory is not None and best >= max_k and by_memory > max_k:
        out.notes.append(f"the search stopped at max_processes {max_k}; memory alone would allow {by_memory}")
    return out
