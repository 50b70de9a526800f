"""The load generator's mechanics in seconds, against tests/echo_moshi_server.py (a protocol fixture, not a model):
K server processes started with --start and stopped after, the sessions search stopping at a one-call lock, the
open loop. The real servers are measured in test_endpoint.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from harness.launcher.server import free_port
from harness.records.endpoint import load_endpoint
from tests.conftest import REPO, run_cli

ECHO = REPO / "tests" / "echo_moshi_server.py"
RELAXED = ["--slo-first-audio-ms", "60000", "--slo-interval-p99-ms", "60000", "--slo-deficit-frames", "100",
           "--slo-underrun-s", "100", "--seconds", "0.4", "--drain", "30"]


def _echo_processes(marker: str) -> list[int]:
    time.sleep(0.5)
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(ECHO) in cmdline and marker in cmdline:
            found.append(process.info["pid"])
    return found


def test_capacity_search_starts_k_server_processes_and_stops_them(tmp_path: Path) -> None:
    port = free_port()
    command = f"{sys.executable} {ECHO} --port {{port}}"
    done = run_cli("endpoint", f"ws://127.0.0.1:{port}", "--start", command, "--capacity-servers", "3",
                   "--machine-hour-usd", "3", "--out", str(tmp_path), *RELAXED, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    results = load_endpoint(tmp_path)
    assert results.search.what == "servers" and results.search.probes == [1, 2, 3]
    assert results.search.largest_passing == 3 and results.search.cost_per_conversation_hour_usd == 1.0
    last = results.runs[-1]
    assert last.servers == 3 and len({c.raw.upgraded_s is not None for c in last.callers}) == 1
    assert _echo_processes("--port") == []  # every server it started is gone




def test_search_stops_at_a_server_that_serves_one_call_at_a_time(tmp_path: Path) -> None:
    port = free_port()
    command = f"{sys.executable} {ECHO} --port {{port}} --one-call-at-a-time"
    done = run_cli("endpoint", f"ws://127.0.0.1:{port}", "--start", command, "--search", "8",
                   "--out", str(tmp_path), *RELAXED, timeout=600)
    results = load_endpoint(tmp_path)
    assert results.search.probes == [1, 2] and results.search.largest_passing == 1
    assert "one call at a time" in results.search.limited_by and results.runs[1].one_call_at_a_time is True
    assert "one call at a time" in done.stdout and done.returncode == 0
    assert _echo_processes("--one-call-at-a-time") == []


def test_open_loop_keeps_every_call(tmp_path: Path) -> None:
    port = free_port()
    done = run_cli("endpoint", f"ws://127.0.0.1:{port}", "--start", f"{sys.executable} {ECHO} --port {{port}}",
                   "--arrival-rate", "5", "--calls", "4", "--out", str(tmp_path), *RELAXED, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run = load_endpoint(tmp_path).runs[0]
    assert run.kind == "open" and run.sessions == 4 and run.arrival_rate_per_s == 5
    starts = [c.raw.scheduled_start_s for c in run.callers]
    assert starts == sorted(starts) and len(set(starts)) == 4
    assert all(c.status == "ok" and c.text.strip().startswith("hi") for c in run.callers)
    html = (tmp_path / "report.html").read_text()
    assert 'id="fig-received-vs-sent"' in html and 'id="fig-intervals"' in html and "open loop" in html
    (tmp_path / "report.html").unlink()
    again = run_cli("report", str(tmp_path))  # re-rendered from endpoint.json alone
    assert again.returncode == 0 and "open loop" in (tmp_path / "report.html").read_text(), again.stderr
