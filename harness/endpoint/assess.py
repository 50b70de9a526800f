"""From what each caller saw to caller rows and a load run: metrics, the lock split, the SLO, one-call-at-a-time."""

from __future__ import annotations

from typing import Optional, Sequence

from harness.endpoint.caller import CallOutcome
from harness.endpoint.protocol import FRAME_SAMPLES, SAMPLE_RATE
from harness.records.endpoint import CallerResult, LoadKind, LoadRun, Slo
from harness.stats.endpoint import (
    calls_overlap,
    deficit_frames,
    drift_ms_per_s,
    packet_intervals,
    send_lateness_ms,
    split_handshake,
    underrun_s,
)

QUEUED_MS = 160.0  # a lock wait above two frames means the caller was queued behind another call
HANDOVER_S = 0.25  # the next call's handshake may leave the server just before the caller sees its own close


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else seconds * 1000.0


def caller_row(index: int, outcome: CallOutcome) -> CallerResult:
    raw = outcome.raw
    row = CallerResult(index=index, status="failed" if outcome.failure else "ok", reason=outcome.failure,
                       close_reason=outcome.close_reason, raw=raw, text="".join(outcome.text))
    if raw.upgraded_s is not None and raw.connect_start_s is not None:
        row.connect_ms = _ms(raw.upgraded_s - raw.connect_start_s)
    if raw.handshake_s is not None and raw.upgraded_s is not None:
        row.handshake_ms = _ms(raw.handshake_s - raw.upgraded_s)
    if raw.audio_s and raw.handshake_s is not None:
        row.first_audio_ms = _ms(raw.audio_s[0] - raw.handshake_s)
    gaps = packet_intervals(raw.audio_s)
    if gaps is not None:
        row.interval_p50_ms, row.interval_p99_ms, row.interval_max_ms = gaps.p50_ms, gaps.p99_ms, gaps.max_ms
    row.sent_frames = len(raw.send_s)
    row.received_frames = sum(raw.audio_samples) / FRAME_SAMPLES
    row.deficit_frames = deficit_frames(raw.send_s, raw.audio_s, raw.audio_samples, FRAME_SAMPLES)
    row.drift_ms_per_s = drift_ms_per_s(raw.send_s, raw.audio_s, raw.audio_samples, SAMPLE_RATE)
    late = send_lateness_ms(raw.send_scheduled_s, raw.send_s)
    if late:
        ordered = sorted(late)
        row.send_late_p99_ms = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
        row.send_late_max_ms = ordered[-1]
    return row


def _split_locks(rows: list[CallerResult]) -> None:
    """Lock wait and prefill per caller: the call before it (by handshake) held the lock until it ended."""
    served = sorted((r for r in rows if r.raw.handshake_s is not None and r.raw.upgraded_s is not None),
                    key=lambda r: r.raw.handshake_s)
    previous_end: Optional[float] = None
    for row in served:
        split = split_handshake(row.raw.upgraded_s, row.raw.handshake_s, previous_end)
        row.lock_wait_ms, row.prefill_ms = _ms(split.lock_wait_s), _ms(split.prefill_s)
        previous_end = row.raw.end_s


def _slo_failures(row: CallerResult, slo: Slo, serial: bool) -> list[str]:
    if row.status == "failed":
        return [f"failed: {row.reason}"]
    out = []
    checks = [("first audio", row.first_audio_ms, slo.first_audio_ms, "ms"),
              ("packet interval p99", row.interval_p99_ms, slo.interval_p99_ms, "ms"),
              ("deficit", row.deficit_frames, slo.deficit_frames, "frames"),
              ("time to handshake", row.handshake_ms, slo.handshake_ms, "ms"),
              ("underrun", row.underrun_s, slo.underrun_s, "s")]
    for name, value, limit, unit in checks:
        if value is None:
            out.append(f"{name}: not measured")
        elif value > limit:
            out.append(f"{name} {value:.1f} {unit} > {limit:g} {unit}")
    if serial and row.lock_wait_ms is not None and row.lock_wait_ms > QUEUED_MS:
        out.append(f"queued {row.lock_wait_ms / 1000:.1f} s behind another call (one call at a time)")
    return out


def one_call_at_a_time(rows: Sequence[CallerResult]) -> Optional[bool]:
    """True: a caller was accepted while another call streamed, and its handshake came only when that call ended,
    and no two calls ever streamed together. False: calls streamed together. None: cannot tell (no overlap tried)."""
    served = [r for r in rows if r.raw.handshake_s is not None and r.raw.end_s is not None]
    spans = [(r.raw.handshake_s, r.raw.end_s) for r in served]
    if calls_overlap(spans, HANDOVER_S):
        return False
    waited = any(r.raw.upgraded_s < other.raw.end_s and r.raw.handshake_s >= other.raw.end_s - HANDOVER_S
                 and r.raw.handshake_s > other.raw.handshake_s
                 for r in served if r.raw.upgraded_s is not None for other in served if other is not r)
    return True if waited else None


def load_run(kind: LoadKind, outcomes: Sequence[CallOutcome], slo: Slo, call_seconds: float,
             arrival_rate: Optional[float] = None, servers: int = 1) -> LoadRun:
    rows = [caller_row(i, o) for i, o in enumerate(outcomes)]
    for row in rows:
        if row.raw.audio_s:
            row.underrun_s = underrun_s(row.raw.audio_s, row.raw.audio_samples, SAMPLE_RATE,
                                        slo.jitter_buffer_ms / 1000.0, owed_samples=len(row.raw.send_s) * FRAME_SAMPLES)
    _split_locks(rows)
    serial = one_call_at_a_time(rows) if servers == 1 else None
    for row in rows:
        row.slo_failures = _slo_failures(row, slo, bool(serial))
    failed = sum(r.status == "failed" for r in rows)
    note = ""
    if serial:
        note = ("the server serves one call at a time: a caller accepted during another call got its handshake only "
                "when that call ended")
    return LoadRun(kind=kind, sessions=len(rows), call_seconds=call_seconds, arrival_rate_per_s=arrival_rate,
                   servers=servers, callers=rows, ok=len(rows) - failed, failed=failed,
                   passed=bool(rows) and all(not r.slo_failures for r in rows), one_call_at_a_time=serial, note=note)
