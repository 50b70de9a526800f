"""Turn what a worker left behind (exit status, stderr, reply) into one RunResult."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from harness.diagnosis.diagnose import diagnose
from harness.launcher.spawn import WorkerOutcome
from harness.records.machine import Machine
from harness.records.schema import CudaMetrics, RunMetrics, RunResult
from harness.scenario.model import RunConfig
from harness.stats.percentiles import real_time_factor, stage_medians, summarize
from harness.stats.telemetry import summarize_soak, summarize_telemetry
from harness.worker.protocol import BenchReply


def skipped(run: RunConfig, reason: str) -> RunResult:
    return RunResult(name=run.name, config=run, status="skipped", reason=reason)


def _metrics(reply: BenchReply, frame_budget_ms: float, warmup_frames: int) -> RunMetrics:
    assert reply.samples is not None and reply.memory is not None and reply.engine is not None
    samples = reply.samples
    steps = summarize(samples.total_ms)
    cuda: Optional[CudaMetrics] = None
    if reply.memory.cuda_peak_allocated_bytes is not None:
        cuda = CudaMetrics(
            device_name=reply.engine.device_name,
            peak_allocated_bytes=reply.memory.cuda_peak_allocated_bytes,
            peak_reserved_bytes=reply.memory.cuda_peak_reserved_bytes or 0,
            total_bytes=reply.memory.cuda_total_bytes or 0,
            stage_p50_ms=stage_medians(samples.cuda_event_stage_ms),
        )
    telemetry_summary = soak = None
    if samples.start_s:
        last = samples.start_s[-1] + samples.total_ms[-1] / 1e3
        audio_s = len(samples.total_ms) * frame_budget_ms / 1e3
        if reply.telemetry is not None:
            telemetry_summary = summarize_telemetry(reply.telemetry, samples.start_s[0], last, audio_s)
        soak = summarize_soak(samples.start_s, samples.total_ms, reply.telemetry)
    return RunMetrics(
        frames=len(samples.total_ms),
        warmup_frames=warmup_frames,
        frame_budget_ms=frame_budget_ms,
        ms_per_step=steps,
        rtf=real_time_factor(steps.p50, frame_budget_ms),
        rtf_p99=real_time_factor(steps.p99, frame_budget_ms),
        stage_p50_ms=stage_medians(samples.stage_ms),
        peak_rss_bytes=reply.memory.peak_rss_bytes,
        rss_after_load_bytes=reply.memory.rss_after_load_bytes,
        load_s=reply.load_s or 0.0,
        first_step_s=reply.first_step_s or 0.0,
        warmup_s=reply.warmup_s or 0.0,
        samples_ms=samples.total_ms,
        stage_samples_ms=samples.stage_ms,
        frame_start_s=samples.start_s,
        cuda=cuda,
        telemetry=reply.telemetry,
        telemetry_summary=telemetry_summary,
        soak=soak,
    )


def _failure_reason(outcome: WorkerOutcome, reply: Optional[BenchReply], timeout_s: float) -> str:
    phase = f" during {outcome.last_phase}" if outcome.last_phase else ""
    if outcome.timed_out:
        return f"timed out after {timeout_s:g} s{phase} (scenario timeout_s); the worker was killed"
    if reply is not None and reply.error is not None:
        return f"{reply.error.type}: {reply.error.message}".strip()
    if outcome.signal_name is not None:
        return f"worker killed by {outcome.signal_name}{phase}"
    return f"worker exited with code {outcome.exit_code}{phase} without a result"


def from_worker(run: RunConfig, outcome: WorkerOutcome, reply: Optional[BenchReply], *, frame_budget_ms: float,
                warmup_frames: int, timeout_s: float, started_at: datetime,
                machine: Optional[Machine] = None) -> RunResult:
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
        wall_s=outcome.wall_s,
    )
    ok = (reply is not None and reply.status == "ok" and not outcome.timed_out and outcome.exit_code == 0)
    if ok:
        assert reply is not None
        result.status = "ok"
        result.metrics = _metrics(reply, frame_budget_ms, warmup_frames)
    else:
        result.reason = _failure_reason(outcome, reply, timeout_s)
        result.partial_samples_ms = list(outcome.frames_ms)
        error = reply.error if reply is not None else None
        result.diagnosis = diagnose(
            run, error_type=error.type if error else "", error_message=error.message if error else "",
            stderr_tail=outcome.stderr_tail, signal_name=outcome.signal_name, exit_code=outcome.exit_code,
            timed_out=outcome.timed_out, timeout_s=timeout_s, last_phase=outcome.last_phase, machine=machine,
            peak_rss_bytes=outcome.max_rss_bytes)
    return result
