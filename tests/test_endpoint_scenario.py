"""A scenario's `endpoint:` block: one `harness run` measures the in-process run AND a served endpoint into one
folder and one report; `--resume` keeps an endpoint measured the same way; a server no caller reaches is a record
(the runs measured before stay), and `--fail-on-nogo` fails on it. The server is tests/echo_moshi_server.py started by
the scenario's own `start:` command (the real servers are measured in test_endpoint.py; this proves the
orchestration: start, measure, stop, record, report, verdict)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from harness.launcher.server import free_port
from harness.records.endpoint import load_endpoint
from harness.records.store import load_session
from harness.records.verdict import Verdict
from harness.scenario.load import load_scenario
from harness.session.endpoint_step import measure_endpoint
from harness.verdict.endpoint import fails_gate, with_endpoint
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

ECHO = REPO / "tests" / "echo_moshi_server.py"


def _scenario(endpoint: str) -> str:
    return f"""
name: endpoint-block
preset: personaplex-tiny
weights: synthetic
torch_threads: 1
persona: off
criteria: {{min_frames: 1, min_seconds: 0}}
confirm_frames: 0
runs:
  - {{device: cpu, dtype: float32}}
endpoint:
{endpoint}
"""


def _echo_processes() -> list[int]:
    time.sleep(0.5)
    return [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
            if str(ECHO) in " ".join(p.info["cmdline"] or []) and "endpoint-block" in " ".join(p.info["cmdline"] or [])]


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `harness run` of a scenario with an in-process run and an endpoint block (the only run in this module)."""
    folder = tmp_path_factory.mktemp("endpoint-block")
    port = free_port()
    served = (f"  url: ws://127.0.0.1:{port}\n  start: {sys.executable} {ECHO} --port {{port}} --tag endpoint-block\n"
              "  sessions: 2\n  seconds: 0.4\n  drain_s: 30\n"
              "  slo: {first_audio_ms: 60000, interval_p99_ms: 60000, deficit_frames: 100, underrun_s: 100}")
    (folder / "scenario.yaml").write_text(_scenario(served))
    done = run_cli("run", str(folder / "scenario.yaml"), "--out", str(folder / "out"), "--frames", "4", "--warmup",
                   "2", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return folder


def test_one_run_measures_the_runs_and_the_served_endpoint(measured: Path) -> None:
    out = measured / "out"
    session = json.loads((out / "results.json").read_text())
    assert [r["status"] for r in session["runs"]] == ["ok"]
    results = load_endpoint(out)
    assert results.setup.server == "command" and results.failure is None and results.machine is not None
    assert [c.status for c in results.runs[0].callers] == ["ok", "ok"] and results.verdict.word == "GO"
    assert session["verdict"]["endpoint"]["go"] is True and "| endpoint GO" in session["verdict"]["headline"]
    html = (out / "report.html").read_text()
    assert 'id="endpoint"' in html and 'id="fig-received-vs-sent"' in html
    assert "**endpoint GO**" in (out / "summary.md").read_text()
    assert _echo_processes() == []  # the server it started is stopped
    (out / "report.html").unlink()  # re-rendered from the files alone
    again = run_cli("report", str(out))
    assert again.returncode == 0 and 'id="endpoint"' in (out / "report.html").read_text(), again.stderr


def test_resume_keeps_an_endpoint_measured_the_same_way(measured: Path, tmp_path: Path) -> None:
    loaded = load_scenario(measured / "scenario.yaml")
    machine = load_session(measured / "out").machine
    shutil.copy(measured / "out" / "endpoint.json", tmp_path / "endpoint.json")
    console = Console(record=True, width=200)
    kept = measure_endpoint(loaded.scenario, None, machine, tmp_path, console, resume=True)
    assert kept == load_endpoint(measured / "out") and "measured before the same way" in console.export_text()
    longer = loaded.scenario.model_copy(update={"endpoint": loaded.scenario.endpoint.model_copy(
        update={"url": f"ws://127.0.0.1:{free_port()}", "start": None})})  # another server: measured again
    again = measure_endpoint(longer, None, machine, tmp_path, console, resume=True)
    assert "measured again: server command -> url" in console.export_text()
    # nothing listens there: a record, not a crash, and a NO-GO that --fail-on-nogo fails on
    assert again.failure and "no caller reached" in again.failure and again.verdict.word == "NO-GO"
    assert load_endpoint(tmp_path).failure == again.failure
    in_process_go = Verdict(go=True, headline="GO: cpu-fp32-eager runs in real time", reasons=[])
    joined = with_endpoint(in_process_go, again)
    assert joined.go and joined.endpoint is not None and not joined.endpoint.go and fails_gate(joined)
    assert joined.headline.startswith("GO: cpu-fp32-eager")
    assert "| endpoint NO-GO: not measured (no caller reached" in joined.headline
    assert not fails_gate(with_endpoint(in_process_go, kept))


def test_only_leaves_the_endpoint_block_out_unless_it_names_it(measured: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(measured / "out", out)
    before = load_endpoint(out)
    done = run_cli("run", str(measured / "scenario.yaml"), "--resume", str(out), "--only", "cpu-fp32-eager")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--only leaves the endpoint block out" in done.stdout
    assert _echo_processes() == []  # no server was started
    assert load_endpoint(out) == before  # what was measured before stays, in the file and the verdict
    assert "| endpoint GO" in json.loads((out / "results.json").read_text())["verdict"]["headline"]
    wrong = run_cli("run", str(measured / "scenario.yaml"), "--only", "nope", "--out", str(tmp_path / "x"))
    assert wrong.returncode == 2 and "runs are: cpu-fp32-eager, endpoint" in wrong.stderr
