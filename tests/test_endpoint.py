"""The served view against PyPI moshi's REAL server (`harness serve`, personaplex-tiny, synthetic weights, CPU), on
127.0.0.1: the protocol end to end, the one-call lock seen by two callers, a server killed mid-call, bad input.

No wall-clock bounds: the machine is shared. Calls are 3 frames long and callers listen until the server has
answered, however slow it is here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from harness.compare.endpoint import compare_endpoints
from harness.compare.regression import default_thresholds
from harness.endpoint.load import CallSettings, closed_loop
from harness.launcher.server import free_port
from harness.records.endpoint import Slo, load_endpoint
from tests.conftest import REPO, run_cli
from tests.endpoint_fakes import aiohttp_server, garbage_server, hangs_up_mid_call, not_found, silent_websocket

pytestmark = pytest.mark.slow

CACHE = Path.home() / ".cache" / "harness-tests" / "serve"  # synthetic weights, written once per machine


class Served:
    def __init__(self, process: subprocess.Popen, url: str, port: int, log: Path) -> None:
        self.process, self.url, self.port, self.log = process, url, port, log

    def server_pids(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            return []


def start_serve(*options: str) -> Served:
    port = free_port()
    log = CACHE / "logs" / f"test-serve-{port}.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", str(port), "--cache-dir", str(CACHE),
                                "--log", str(log), *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=REPO)
    url = ""
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        if line.startswith("ws://"):
            url = line.strip()
            break
    if not url:
        process.kill()
        pytest.fail(f"harness serve did not print its URL: {process.stderr.read()[-3000:]}\n{log.read_text()[-3000:]}")
    return Served(process, url, port, log)


def stop_serve(served: Served) -> list[int]:
    """Ctrl-C, as a user would; returns the server's processes that survived (must be none)."""
    pids = served.server_pids()
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGINT)
        served.process.wait(timeout=120)
    time.sleep(0.5)
    return [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = start_serve("--preset", "personaplex-tiny", "--server", "moshi")
    yield server
    assert stop_serve(server) == [], "harness serve left server processes behind"


def test_serve_listens_on_loopback_only(served: Served) -> None:
    listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == served.port}
    assert listening == {"127.0.0.1"}
    assert served.url == f"ws://127.0.0.1:{served.port}/api/chat"


def _cli_two_callers(served: Served, out: Path, *options: str) -> subprocess.CompletedProcess:
    return run_cli("endpoint", served.url, "--sessions", "2", "--seconds", "0.24", "--drain", "300", "--out",
                   str(out), *options, timeout=1200)


@pytest.fixture(scope="module")
def two_callers(served: Served, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real load through the CLI, two callers of 3 frames (moshi answers after its 2-frame delay), shared by the
    lock test and the compare test."""
    out = tmp_path_factory.mktemp("two-callers")
    return out, _cli_two_callers(served, out, "--fail-on-nogo")


def test_two_callers_show_the_lock_and_the_cli_fails_on_nogo(two_callers: tuple[Path, subprocess.CompletedProcess]) -> None:
    out, done = two_callers
    assert done.returncode == 3, done.stderr[-2000:]  # a caller queued behind the other call fails the SLO
    results = load_endpoint(out)
    run = results.runs[0]
    assert [c.status for c in run.callers] == ["ok", "ok"], [c.reason for c in run.callers]
    first, second = sorted(run.callers, key=lambda c: c.raw.handshake_s)
    # both were accepted at once, but the second got its handshake only when the first call had ended
    assert second.raw.upgraded_s < first.raw.end_s <= second.raw.handshake_s + 0.25
    assert first.lock_wait_ms == 0.0 and second.lock_wait_ms > 0.0
    assert run.one_call_at_a_time is True and any("queued" in f for f in second.slo_failures) and not run.passed
    for caller in run.callers:  # the protocol really ran: audio paced out, Opus decoded back, raw times kept
        assert caller.sent_frames == 3 and caller.raw.audio_s and sum(caller.raw.audio_samples) % 1920 == 0
        assert caller.first_audio_ms is not None and caller.first_audio_ms > 0
    assert results.verdict.word == "NO-GO" and results.setup.server == "url" and results.machine is not None
    assert "Served endpoint" in (out / "report.html").read_text()
    assert (out / "summary.md").read_text().startswith("**endpoint NO-GO**")
    assert json.loads((out / "endpoint.json").read_text())["schema_version"] == 1


def test_compare_two_real_endpoint_outputs(served: Served, two_callers: tuple[Path, subprocess.CompletedProcess],
                                           tmp_path: Path) -> None:
    """Two real measurements of the same server: judged by another SLO they are refused; allowed, every metric of
    the load is a row (judged, or "not judged" with why: two callers of 3 frames are little evidence)."""
    base, _ = two_callers
    done = _cli_two_callers(served, tmp_path, "--slo-first-audio-ms", "1000")
    assert done.returncode == 0 and (tmp_path / "endpoint.json").exists(), done.stderr[-2000:] + done.stdout[-3000:]
    refused = run_cli("compare", str(base), str(tmp_path))
    assert refused.returncode == 5 and '"first_audio_ms": 500.0' in refused.stdout, refused.stderr
    allowed = compare_endpoints(load_endpoint(base), load_endpoint(tmp_path), default_thresholds(), 0.01, "a", "b",
                                allow_differences={"slo"})
    assert allowed.exit_code in (0, 1, 6, 7)  # a judgement; which one is the machine's business
    rows = {r.name: r for r in allowed.runs}
    names = [f"endpoint closed x2: {m}" for m in ("failed callers", "packet interval ms", "first audio ms",
                                                  "time to handshake ms", "deficit frames")]
    assert set(names) <= set(rows) and rows[names[0]].outcome == "unchanged"
    assert all(s.verdict != "not judged" or s.note for r in allowed.runs for s in r.statistics)  # says why


@pytest.mark.parametrize("make, expected", [
    (lambda: aiohttp_server({"/api/chat": not_found}), "not a moshi server: HTTP 404"),
    (garbage_server, "not a moshi server: its reply is not HTTP"),
])
def test_not_a_moshi_server_is_one_line_exit_2(make, expected: str, tmp_path: Path) -> None:  # noqa: ANN001
    with make() as port:
        done = run_cli("endpoint", f"ws://127.0.0.1:{port}", "--seconds", "0.24", "--out", str(tmp_path))
    assert done.returncode == 2 and expected in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert load_endpoint(tmp_path).runs[0].callers[0].status == "failed"  # the failed row is kept


def test_tls_and_unreachable_are_one_line(tmp_path: Path) -> None:
    done = run_cli("endpoint", f"ws://127.0.0.1:{free_port()}", "--out", str(tmp_path / "unreachable"))
    assert done.returncode == 2 and "cannot connect" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    with aiohttp_server({"/api/chat": not_found}) as port:  # a folder of its own: --out never overwrites results
        done = run_cli("endpoint", f"wss://127.0.0.1:{port}", "--out", str(tmp_path / "tls"))
    assert done.returncode == 2 and "TLS failure" in done.stderr and "Traceback" not in done.stderr


def test_no_handshake_and_hang_up_are_failed_rows(tmp_path: Path) -> None:
    with aiohttp_server({"/api/chat": silent_websocket, "/hang": hangs_up_mid_call}) as port:
        run = closed_loop([f"ws://127.0.0.1:{port}/api/chat", f"ws://127.0.0.1:{port}/hang"], 2,
                          CallSettings(call_seconds=2.0, drain_s=0.5, handshake_timeout_s=1.0), Slo())
    silent, hangs = run.callers
    assert silent.status == "failed" and "no handshake within 1 s" in silent.reason
    assert hangs.status == "failed" and "call ended after" in hangs.reason and "server closed" in hangs.reason
    assert run.sessions == 2 and run.failed == 2


def test_server_killed_mid_call_gives_failed_rows(served: Served) -> None:
    """Last in this module: it kills the served server."""
    settings = CallSettings(call_seconds=60.0, drain_s=1.0, handshake_timeout_s=900.0)
    holder = {}
    worker = threading.Thread(target=lambda: holder.update(run=closed_loop([served.url], 2, settings, Slo())))
    worker.start()
    deadline = time.monotonic() + 900
    while "accepted connection" not in served.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    for pid in served.server_pids():
        os.kill(pid, signal.SIGKILL)
    worker.join(timeout=300)
    run = holder["run"]
    assert run.failed == 2 and run.sessions == 2
    assert all(c.reason for c in run.callers)
    assert served.process.wait(timeout=60) != 0  # harness serve says its server died and exits
