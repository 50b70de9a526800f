"""Capacity searches with real workers on the CPU (personaplex-tiny, few frames): server processes run together,
and sessions in lockstep with a caller joining through the persona prefill. No timing or memory assertions:
a 5000 ms budget keeps every size real time on a loaded machine, so the structure is what is checked."""

from __future__ import annotations

import io
import signal
import time
from pathlib import Path

import psutil
from rich.console import Console

from harness.fleet.summary import machine_from_session
from harness.records.fleet import FleetMachine
from harness.records.store import load_session
from harness.scenario.load import load_scenario
from harness.session.capacity import ticks_to_certify
from harness.session.runner import RunOptions, ScenarioRunner
from tests.conftest import start_run_until

SCENARIO = """
    name: capacity
    preset: personaplex-tiny
    warmup_frames: 2
    frame_budget_ms: 5000
    torch_threads: 1
    telemetry_hz: 0
    timeout_s: 600
    persona: {{voice_prompt_frames: 2, silence_frames: 1, text_prompt_tokens: 3, server_wait_ms: 10}}
    criteria: {{min_frames: 3, min_seconds: 0}}
    defaults: {{device: cpu, dtype: float32, serving: model}}
    {extra}
    runs:
      - name: tiny-cap
        capacity: {{max_sessions: 2, max_processes: 2, gpu_hour_usd: 0.5, join: {{}}}}
    """


def test_both_capacity_figures_and_the_join_prefill(tmp_path: Path, write_scenario) -> None:
    loaded = load_scenario(write_scenario(SCENARIO.format(extra="")))
    session = ScenarioRunner(loaded, tmp_path, RunOptions(frames=3), Console(file=io.StringIO())).run(loaded.runs)
    run = session.runs[0]
    assert run.status == "ok" and run.metrics is not None and run.metrics.capacity is not None, run.reason
    cap = run.metrics.capacity
    # Sessions in lockstep: labelled as needing a batching server, judged by the p99 rule and said so.
    assert "batching server" in cap.lockstep_needs and [p.sessions for p in cap.probes] == [1, 2]
    assert cap.limited_by == "max_sessions" and cap.max_realtime_sessions == 2, [p.reasons for p in cap.probes]
    # 3 ticks asked; at 2 sessions the joiner's 7 prompt steps ran inside 7 more ticks of the batch
    assert run.config.batch_size == 2 and run.metrics.frames == 3 + 7
    assert all(p.judged_by.startswith("p99 within the deadline only") for p in cap.probes)
    needed = ticks_to_certify(loaded.scenario.criteria)  # bursts of 10: 4606 clean ticks certify 1% at 99%
    assert all(not p.certified and f"{needed} ticks" in p.notes[0] and p.ticks_to_certify for p in cap.probes), \
        [p.notes for p in cap.probes]
    # The caller joining the 2-session batch stepped the persona prompt (2 voice + 1 + 3 text + 1 steps) inside the
    # batch's ticks, one step per tick, as a batching server admits a caller: nobody stalled.
    join = next(p.admission for p in cap.probes if p.sessions == 2)
    assert join is not None and join.mode == "interleaved" and "one step per tick" in join.how, join
    assert join.warmup_steps == join.prompt_ticks == len(join.tick_ms) == 7 and join.others == 1
    assert join.stall_ms == join.reset_ms and join.prefill_ms == 0 and join.handshake_ms > 0
    assert next(p.admission for p in cap.probes if p.sessions == 1) is None
    assert cap.cost is not None and cap.cost.per_conversation_hour_usd == 0.5 / 2
    # Server processes per machine: 1 and 2 one-call workers measured together, each its own call's prefill.
    procs = cap.processes
    assert procs is not None and procs.how == "measured" and [p.processes for p in procs.probes] == [1, 2]
    assert procs.max_realtime_processes == 2 and procs.limited_by == "max_sessions", [p.reasons for p in procs.probes]
    assert all(p.ran and p.together and p.frames == 3 for p in procs.probes)
    # The K=1 probe is a single run of the same configuration at real-time pace: the same frames as the lockstep
    # search's 1-session probe, and the same answer at a generous budget.
    single, k1 = cap.probes[0], procs.probes[0]
    assert single.ticks == k1.frames == 3 and single.verdict == k1.verdict == "realtime", (single, k1)
    assert "not certified by the GO rule" in procs.judged_by and procs.predicted_by_memory
    assert procs.cost is not None and procs.cost.sessions == 2
    assert not list((tmp_path / ".work").glob("*.barrier"))  # the start barrier's folder is cleaned up
    html = (tmp_path / "report.html").read_text()
    assert "Server processes per machine" in html and "A lockstep batch needs a batching server" in html
    assert "stalls nobody" in html
    # The fleet's deployable figure is the server processes; the lockstep batch is kept apart.
    line = machine_from_session(session, FleetMachine(scenario="capacity", status="ok"))
    assert (line.server_processes, line.server_processes_how, line.lockstep_sessions) == (2, "measured", 2)
    assert line.cost_per_conversation_hour == 0.25


def test_a_size_the_planner_says_cannot_fit_is_not_run(tmp_path: Path, write_scenario) -> None:
    loaded = load_scenario(write_scenario(SCENARIO.format(extra="host_memory_limit_gib: 0.9")))
    session = ScenarioRunner(loaded, tmp_path, RunOptions(frames=3), Console(file=io.StringIO())).run(loaded.runs)
    run = session.runs[0]
    assert run.status == "skipped" and "do not fit in memory" in run.reason, run.reason
    assert not list((tmp_path / ".work").glob("tiny-cap*")) and not (tmp_path / "logs").exists()


def test_sigterm_keeps_every_finished_probe_and_stops_the_k_workers(tmp_path: Path) -> None:
    """A real `harness run` of a capacity search, terminated while its server-process probe's worker runs: exit
    143, the lockstep probe that finished is in results.json, and no worker outlives the command."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\npreset: personaplex-tiny\nframes: 3\nwarmup_frames: 2\nframe_budget_ms: 5000\n"
                        "torch_threads: 1\ntelemetry_hz: 0\npersona: off\ncriteria: {min_frames: 3, min_seconds: 0}\n"
                        "defaults: {device: cpu, dtype: float32}\n"
                        "runs:\n  - name: cap\n    capacity: {max_sessions: 1, max_processes: 2}\n")
    out = tmp_path / "out"
    marker = out / ".work" / "cap.p1.1" / "job.json"  # the first server-process probe's worker
    proc = start_run_until(scenario, out, marker, timeout_s=400)
    assert marker.exists(), "the search reached its server-process probe"
    time.sleep(1.0)
    family = psutil.Process(proc.pid).children(recursive=True)
    assert family, "a worker was running"
    proc.send_signal(signal.SIGTERM)
    # The workers must be stopped in the interrupt path itself, not by the command's exit: by the time the
    # interrupted session is on disk (then the report is drawn), none may be left.
    while proc.poll() is None and not _interrupted(out / "results.json"):
        time.sleep(0.02)
    left = [p.pid for p in family if _alive(p)]
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert not left, "a K-process probe's worker was still running when the interrupted session was written"
    assert not [p.pid for p in family if _alive(p)], "a K-process probe's worker outlived harness run"
    session = load_session(out)
    run = session.runs[0]
    assert session.state == "interrupted" and run.status == "interrupted" and "SIGTERM" in run.reason, run.reason
    cap = run.metrics.capacity if run.metrics is not None else None
    assert cap is not None and [p.sessions for p in cap.probes] == [1] and cap.probes[0].ran
    assert cap.processes is None or not cap.processes.probes  # the K=1 probe was stopped, not invented


def _interrupted(results: Path) -> bool:
    try:
        return '"state": "interrupted"' in results.read_text() or '"state":"interrupted"' in results.read_text()
    except OSError:
        return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
