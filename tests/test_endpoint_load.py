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


def test_k_servers_with_a_prefill_split_per_server_over_two_client_processes(tmp_path: Path) -> None:
    """Issue 26: three servers that each prefill their caller were shown as 'lock wait + prefill 0' for every caller
    after the first. Per server, nothing was before them: all prefill. The callers ran in two load generator
    processes, and the run says how its client kept up (recorded, not asserted: this machine is shared)."""
    port = free_port()
    command = f"{sys.executable} {ECHO} --port {{port}} --prefill-s 0.5 --tag prefill"
    done = run_cli("endpoint", f"ws://127.0.0.1:{port}", "--start", command, "--capacity-servers", "3",
                   "--client-processes", "2", "--out", str(tmp_path), *RELAXED, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    last = load_endpoint(tmp_path).runs[-1]
    assert last.servers == 3 and sorted(c.raw.server for c in last.callers) == [0, 1, 2]
    for caller in last.callers:
        assert caller.status == "ok" and caller.lock_split == "no call before"
        assert caller.lock_wait_ms == 0.0 and caller.prefill_ms == caller.handshake_ms
    assert last.client is not None and last.client.processes == 2 and last.client.loop_lag_p99_ms is not None
    assert {c.raw.process for c in last.callers} == {0, 1}
    assert _echo_processes("prefill") == []


def test_endpoint_out_refuses_a_folder_that_holds_results(tmp_path: Path) -> None:
    for name in ("endpoint.json", "results.json"):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        (folder / name).write_text("{}")
        done = run_cli("endpoint", "ws://127.0.0.1:9", "--out", str(folder))
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (f"harness: {folder} already holds results ({name}): nothing was changed; "
                                       "choose another --out")
        assert (folder / name).read_text() == "{}" and sorted(p.name for p in folder.iterdir()) == [name]


def test_an_interrupted_endpoint_search_keeps_the_runs_that_finished(tmp_path: Path) -> None:
    """SIGTERM once the first load run of a search has finished: endpoint.json holds it, marked interrupted, with no
    verdict; the servers it started are stopped; exit 143."""
    import os
    import signal
    import subprocess

    port = free_port()
    command = f"{sys.executable} {ECHO} --port {{port}} --tag interrupted"
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=os.pathsep.join(p for p in (str(REPO),
                                                                                 os.environ.get("PYTHONPATH", "")) if p))
    process = subprocess.Popen([sys.executable, "-m", "harness", "endpoint", f"ws://127.0.0.1:{port}", "--start",
                                command, "--search", "64", "--out", str(tmp_path), *RELAXED[:-4], "--seconds", "2",
                                "--drain", "30"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:  # the first run's table is printed when it finished
        if "1 call(s)" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "finished run(s) kept in" in stderr
    results = load_endpoint(tmp_path)
    assert results.interrupted == "interrupted (SIGTERM)" and results.verdict is None and results.search is None
    assert results.runs and results.runs[0].sessions == 1 and results.runs[0].callers[0].status == "ok"
    assert "INTERRUPTED" in (tmp_path / "summary.md").read_text()
    assert _echo_processes("interrupted") == []
