"""From what each caller saw to caller rows and a load run: metrics, the lock split, the SLO, one-call-at-a-time,
and whether the load generator kept up.

Time to handshake is split into lock wait + prefill only where that split is known: per server process, when the
server is shown to serve one call at a time (the wait is for the call before on that server), or when no caller on
it could have waited (nothing was streaming on it when it was accepted). Otherwise (a server that runs calls
concurrently, or one whose behaviour the run cannot tell) both stay empty and `lock_split` says why: a split
computed as if one lock held would blame every later caller's whole handshake on a lock that does not exist.
"""

from __future__ import annotations

from typing import Optional, Sequence

from harness.endpoint.caller import CallOutcome
from harness.endpoint.client import client_health
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

# SLO failures a client that fell behind can cause by itself (it sent late or read late); a failed call, a queue
# behind another call or a slow handshake are the server's whatever the client did.
CLIENT_SENSITIVE = ("first audio", "packet interval p99", "deficit", "underrun")
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


def _waited_for_nothing(rows: list[CallerResult]) -> bool:
    """No caller of this server was accepted while another of its calls was still on (none could wait for one)."""
    return not any(o.raw.upgraded_s <= r.raw.upgraded_s < o.raw.end_s
                   for r in rows for o in rows if o is not r and o.raw.end_s is not None
                   and o.raw.upgraded_s is not None)


def _split_locks(rows: list[CallerResult]) -> dict[int, Optional[bool]]:
    """Lock wait and prefill per caller, per server, where known (see the module); one-call-at-a-time per server."""
    serial_by_server: dict[int, Optional[bool]] = {}
    for server in sorted({r.raw.server for r in rows}):
        group = [r for r in rows if r.raw.server == server]
        serial = one_call_at_a_time(group)
        serial_by_server[server] = serial
        served = sorted((r for r in group if r.raw.handshake_s is not None and r.raw.upgraded_s is not None),
                        key=lambda r: r.raw.handshake_s)
        if serial or _waited_for_nothing(served):
            previous_end: Optional[float] = None
            for row in served:
                split = split_handshake(row.raw.upgraded_s, row.raw.handshake_s, previous_end)
                row.lock_wait_ms, row.prefill_ms = _ms(split.lock_wait_s), _ms(split.prefill_s)
                row.lock_split = "measured" if previous_end is not None and serial else "no call before"
                previous_end = row.raw.end_s
            continue
        why = ("its server ran calls concurrently" if serial is False
               else "cannot tell whether its server serves one call at a time")
        for row in served:
            row.lock_split = f"unknown: {why}"
    return serial_by_server


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


def _serial(by_server: dict[int, Optional[bool]]) -> Optional[bool]:
    """The run's one-call-at-a-time: False when any server ran calls together, True when one was shown to queue."""
    values = list(by_server.values())
    if any(v is False for v in values):
        return False
    return True if any(values) else None


def load_run(kind: LoadKind, outcomes: Sequence[CallOutcome], slo: Slo, call_seconds: float,
             arrival_rate: Optional[float] = None, servers: int = 1,
             lags_by_process: Optional[Sequence[Sequence[float]]] = None, callers_per_process: int = 0) -> LoadRun:
    rows = [caller_row(i, o) for i, o in enumerate(outcomes)]
    for row in rows:
        if row.raw.audio_s:
            row.underrun_s = underrun_s(row.raw.audio_s, row.raw.audio_samples, SAMPLE_RATE,
                                        slo.jitter_buffer_ms / 1000.0, owed_samples=len(row.raw.send_s) * FRAME_SAMPLES)
    by_server = _split_locks(rows)
    serial = _serial(by_server)
    for row in rows:
        row.slo_failures = _slo_failures(row, slo, bool(by_server.get(row.raw.server)))
    failed = sum(r.status == "failed" for r in rows)
    notes = []
    if serial:
        notes.append("the server serves one call at a time: a caller accepted during another call got its handshake "
                     "only when that call ended")
    late = [send_lateness_ms(r.raw.send_scheduled_s, r.raw.send_s) for r in rows]
    client = client_health(lags_by_process if lags_by_process is not None else [], late,
                           callers_per_process or len(rows)) if rows else None
    passed = bool(rows) and all(not r.slo_failures for r in rows)
    the_clients = all(f.startswith(CLIENT_SENSITIVE) for r in rows for f in r.slo_failures)
    limited = client is not None and client.fell_behind and not passed and the_clients
    if limited:
        assert client is not None
        notes.append(f"limited by the load generator, not a server failure: {client.note}; spread the callers over "
                     "more processes (--client-processes)")
    elif client is not None and client.fell_behind:
        notes.append(client.note)  # said either way: the figures include the client's own lateness
    return LoadRun(kind=kind, sessions=len(rows), call_seconds=call_seconds, arrival_rate_per_s=arrival_rate,
                   servers=servers, callers=rows, ok=len(rows) - failed, failed=failed, passed=passed,
                   one_call_at_a_time=serial, note="; ".join(notes), client=client, limited_by_client=limited)
