"""Turn what a run's worker processes left behind (exit status, stderr, replies) into one RunResult."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from harness.contract.wire import BenchReply
from harness.diagnosis.diagnose import diagnose
from harness.launcher.spawn import WorkerOutcome
from harness.records.config import RunConfig
from harness.records.machine import Machine
from harness.records.schema import (
    ColdStart,
    CudaMetrics,
    FirstAudio,
    FrameCpuSamples,
    Percentiles,
    PrefillMetrics,
    ProcessRun,
    RunMetrics,
    RunResult,
)
from harness.session.summaries import summarize_soak, summarize_telemetry
from harness.stats.percentiles import percentile, real_time_factor, stage_medians, summarize


@dataclass(frozen=True)
class ProcessOutcome:
    """One worker process of a run: how it ended and what it replied (None when it wrote nothing valid)."""

    outcome: WorkerOutcome
    reply: Optional[BenchReply]
    reply_error: str = ""  # the reply file existed but could not be read: the named reason, kept for the record

    @property
    def ok(self) -> bool:
        r = self.reply
        return (r is not None and r.status == "ok" and r.samples is not None and r.memory is not None
                and r.engine is not None and not self.outcome.timed_out and self.outcome.exit_code == 0)


def skipped(run: RunConfig, reason: str) -> RunResult:
    return RunResult(name=run.name, config=run, status="skipped", reason=reason)


def interrupted(run: RunConfig, finished: list[ProcessOutcome], measured_ms: list[float], why: str,
                started_at: datetime) -> RunResult:
    """The run in flight when the session was stopped: every measured frame kept (finished processes' replies,
    then the frames the running one reported on its progress pipe), judged by nothing."""
    segments = [list(p.reply.samples.total_ms) for p in finished if p.ok and p.reply and p.reply.samples]
    if measured_ms:
        segments.append(list(measured_ms))
    kept = [ms for segment in segments for ms in segment]
    pids = [p.outcome.pid for p in finished]
    return RunResult(name=run.name, config=run, status="interrupted", started_at=started_at,
                     reason=f"{why} after {len(kept)} measured frame(s): the worker was stopped with its process group; "
                            "the frames are kept, not judged",
                     kept_samples_ms=kept, kept_process_frames=[len(s) for s in segments],
                     worker_pid=pids[0] if pids else None, wall_s=sum(p.outcome.wall_s for p in finished) or None)


def _cuda(replies: list[BenchReply]) -> Optional[CudaMetrics]:
    peaks = [r.memory for r in replies if r.memory is not None and r.memory.cuda_peak_allocated_bytes is not None]
    if not peaks:
        return None
    first = replies[0]
    used = [p.cuda_device_used_bytes for p in peaks if p.cuda_device_used_bytes is not None]
    events: dict[str, list[float]] = {}
    for reply in replies:
        for stage, values in (reply.samples.cuda_event_stage_ms if reply.samples else {}).items():
            events.setdefault(stage, []).extend(values)
    return CudaMetrics(
        device_name=first.engine.device_name if first.engine else "",
        peak_allocated_bytes=max(p.cuda_peak_allocated_bytes or 0 for p in peaks),
        peak_reserved_bytes=max(p.cuda_peak_reserved_bytes or 0 for p in peaks),
        total_bytes=peaks[0].cuda_total_bytes or 0,
        device_used_bytes=max(used) if used else None,
        stage_p50_ms=stage_medians(events),
    )


def _frame_cpu(replies: list[BenchReply]) -> Optional[FrameCpuSamples]:
    """Every process's per-frame CPU evidence, concatenated like samples_ms; a list that some process lacks (or
    that does not have one entry per frame) is left empty rather than misaligned."""
    samples = [r.samples for r in replies if r.samples is not None]
    if not samples or not any(s.cpu_ms for s in samples):
        return None

    def joined(name: str) -> list[float]:
        lists = [getattr(s, name) for s in samples]
        if any(len(values) != len(s.total_ms) for values, s in zip(lists, samples)):
            return []
        return [v for values in lists for v in values]

    stages: dict[str, list[float]] = {}
    for stage in samples[0].stage_cpu_ms:
        lists = [s.stage_cpu_ms.get(stage, []) for s in samples]
        if all(len(values) == len(s.total_ms) for values, s in zip(lists, samples)):
            stages[stage] = [v for values in lists for v in values]
    return FrameCpuSamples(cpu_ms=joined("cpu_ms"), stage_cpu_ms=stages, process_cpu_ms=joined("process_cpu_ms"),
                           run_wait_ms=joined("run_wait_ms"), others_cpu_ms=joined("others_cpu_ms"),
                           main_wait_ms=joined("main_wait_ms"), frame_wait_ms=joined("frame_wait_ms"),
                           cores=min((s.cores for s in samples), default=0),
                           threads=sum(s.threads for s in samples) if all(s.threads for s in samples) else 0,
                           gc_ms=joined("gc_ms"), sources=dict(samples[0].cpu_sources))


def _metrics(replies: list[BenchReply], frame_budget_ms: float, warmup_frames: int) -> RunMetrics:
    """Samples of every process, in order; memory peaks the largest any process reached; telemetry, load,
    warmup and first step from the first process (the others repeat them)."""
    first = replies[0]
    assert first.samples is not None and first.memory is not None
    samples = [ms for r in replies for ms in r.samples.total_ms]  # type: ignore[union-attr]
    stages: dict[str, list[float]] = {}
    for reply in replies:
        for stage, values in reply.samples.stage_ms.items():  # type: ignore[union-attr]
            stages.setdefault(stage, []).extend(values)
    steps = Percentiles.model_validate(summarize(samples))
    telemetry_summary = soak = None
    start_s = first.samples.start_s
    if start_s:
        first_ms = first.samples.total_ms
        last = start_s[-1] + first_ms[-1] / 1e3
        if first.telemetry is not None:
            telemetry_summary = summarize_telemetry(first.telemetry, start_s[0], last,
                                                    len(first_ms) * frame_budget_ms / 1e3,
                                                    idle_window=first.idle_window,
                                                    frames=[(s, s + ms / 1e3) for s, ms in zip(start_s, first_ms)],
                                                    audio_per_frame_s=frame_budget_ms / 1e3)
        soak = summarize_soak(start_s, first_ms, first.telemetry)
    prefill = _prefill(first)
    processes = [ProcessRun(frames=len(r.samples.total_ms),  # type: ignore[union-attr]
                            p50_ms=percentile(r.samples.total_ms, 50),  # type: ignore[union-attr]
                            p99_ms=percentile(r.samples.total_ms, 99))  # type: ignore[union-attr]
                 for r in replies] if len(replies) > 1 else []
    return RunMetrics(
        frames=len(samples),
        warmup_frames=warmup_frames,
        frame_budget_ms=frame_budget_ms,
        audio_s=len(samples) * frame_budget_ms / 1e3,
        ms_per_step=steps,
        rtf=real_time_factor(steps.p50, frame_budget_ms),
        rtf_p99=real_time_factor(steps.p99, frame_budget_ms),
        stage_p50_ms=stage_medians(stages),
        peak_rss_bytes=max(r.memory.peak_rss_bytes for r in replies),  # type: ignore[union-attr]
        rss_after_load_bytes=first.memory.rss_after_load_bytes,
        load_s=first.load_s or 0.0,
        first_step_s=first.first_step_s or 0.0,
        warmup_s=first.warmup_s or 0.0,
        late_start_frames=sum(r.samples.late_start_frames for r in replies),  # type: ignore[union-attr]
        samples_ms=samples,
        stage_samples_ms=stages,
        frame_start_s=start_s if len(replies) == 1 else [],
        cuda=_cuda(replies),
        frame_cpu=_frame_cpu(replies),
        stopped_early=next((r.samples.stopped_early for r in replies if r.samples and r.samples.stopped_early), ""),
        telemetry=first.telemetry,
        telemetry_summary=telemetry_summary,
        soak=soak,
        prefill=prefill,
        first_frame_ms=first.first_frame_ms,
        first_audio=_first_audio(first, prefill),
        cold_start=_cold_start(first),
        processes=processes,
        admission=first.admission,
        fidelity=first.fidelity,
    )


def _synthetic(reply: BenchReply) -> bool:
    return reply.engine is not None and reply.engine.weights.startswith("synthetic")


def _first_audio(reply: BenchReply, prefill: Optional[PrefillMetrics]) -> Optional[FirstAudio]:
    """Per call, apart from the server's start: voice encode + prefill (waits included) + the first frame."""
    if reply.first_frame_ms is None:
        return None
    voice = prefill.voice_encode_ms / 1e3 if prefill else 0.0
    steps = prefill.seconds if prefill else 0.0
    frame = reply.first_frame_ms / 1e3
    return FirstAudio(voice_encode_s=voice, prefill_s=steps, first_frame_s=frame, per_call_s=voice + steps + frame,
                      synthetic=_synthetic(reply))


def _cold_start(reply: BenchReply) -> ColdStart:
    load, warmup = reply.load_s or 0.0, reply.warmup_s or 0.0
    return ColdStart(import_s=reply.import_s, load_s=load, warmup_s=warmup,
                     total_s=(reply.import_s or 0.0) + load + warmup, synthetic=_synthetic(reply))


def _prefill(reply: BenchReply) -> Optional[PrefillMetrics]:
    p = reply.prefill
    if p is None or not p.step_ms:
        return None
    return PrefillMetrics(steps=len(p.step_ms), voice_steps=p.voice_steps, silence_steps=p.silence_steps,
                          text_steps=p.text_steps, text_tokens_estimated=p.text_tokens_estimated, seconds=p.seconds,
                          wait_s=p.wait_s, voice_encode_ms=p.voice_encode_ms, step_p50_ms=percentile(p.step_ms, 50),
                          step_p99_ms=percentile(p.step_ms, 99), context_frames=len(p.step_ms),
                          context_capacity=p.context_capacity)


def _failure_reason(outcome: WorkerOutcome, reply: Optional[BenchReply], timeout_s: float,
                    reply_error: str = "") -> str:
    phase = f" during {outcome.last_phase}" if outcome.last_phase else ""
    if outcome.timed_out:
        return (f"timed out after {timeout_s:.4g} s{phase} (timeout_s, --timeout, or the time left under --time-limit); "
                "the worker was killed")
    if reply is not None and reply.error is not None:
        return f"{reply.error.type}: {reply.error.message}".strip()
    if reply_error:
        return f"the worker's reply could not be read: {reply_error}"
    if outcome.signal_name is not None:
        return f"worker killed by {outcome.signal_name}{phase}"
    return f"worker exited with code {outcome.exit_code}{phase} without a result"


def from_workers(run: RunConfig, processes: list[ProcessOutcome], *, frame_budget_ms: float, warmup_frames: int,
                 timeout_s: float, started_at: datetime, machine: Optional[Machine] = None) -> RunResult:
    """One record for a run: ok when every process measured; otherwise failed, with the first failure's
    reason and diagnosis and the frames it measured before dying."""
    failed = next((p for p in processes if not p.ok), None)
    shown = failed or processes[0]
    outcome, reply = shown.outcome, shown.reply
    result = RunResult(
        name=run.name,
        config=run,
        status="failed",
        worker_pid=outcome.pid,
        exit_code=outcome.exit_code,
        signal=outcome.signal_name,
        stderr_tail=outcome.stderr_tail,
        engine=reply.engine if reply is not None else None,
        started_at=started_at,
        wall_s=sum(p.outcome.wall_s for p in processes),
    )
    if failed is None:
        result.status = "ok"
        result.metrics = _metrics([p.reply for p in processes], frame_budget_ms, warmup_frames)  # type: ignore[misc]
        if len(processes) > 1:
            for record, process in zip(result.metrics.processes, processes):
                record.pid = process.outcome.pid
        return result
    which = f"process {processes.index(failed) + 1} of {len(processes)}: " if len(processes) > 1 else ""
    result.reason = which + _failure_reason(outcome, reply, timeout_s, shown.reply_error)
    result.partial_samples_ms = list(outcome.frames_ms)
    error = reply.error if reply is not None else None
    result.diagnosis = diagnose(
        run, error_type=error.type if error else "", error_message=error.message if error else "",
        stderr_tail=outcome.stderr_tail, signal_name=outcome.signal_name, exit_code=outcome.exit_code,
        timed_out=outcome.timed_out, timeout_s=timeout_s, last_phase=outcome.last_phase, machine=machine,
        peak_rss_bytes=outcome.max_rss_bytes)
    return result
