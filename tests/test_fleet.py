"""harness fleet on a real Ray cluster: 2 nodes on 127.0.0.1 with custom resources, started and torn down here.

The slow tests share one cluster (starting one costs ~15 s on 2 cores): a scenario on both nodes merged into
fleet.json / fleet.html, a task killed mid-run on each node (its Ray worker on one, its `harness run` on the
other), and requests no node can satisfy. The fixture checks that no Ray process, no temp folder, no token
file and no /tmp/ray are left afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from harness.cli import main as cli_main
from harness.fleet import ray_available
from harness.fleet.placement import NodeInfo, PlacementError, Requirement, choose_nodes, parse_resources
from harness.fleet.summary import buyer_order
from harness.records.fleet import FleetFileError, FleetMachine, is_fleet, load_fleet, machine_results
from harness.scenario.load import load_scenario
from tests.conftest import REPO, TINY, run_cli

# Ray is imported by the fleet modules when a cluster starts, not here (it reads its settings at import).
needs_ray = pytest.mark.skipif(not ray_available(), reason="harness fleet needs Ray (pip install 'harness[fleet]')")

RUN = "cpu-fp32-eager"


def _scenario(folder: Path, name: str, frames: int = 8, pace: str = "fast", timeout_s: int = 300) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        preset: {TINY}
        persona: off  # the fleet's placement and collection are under test, not the persona prefill
        frames: {frames}
        warmup_frames: 2
        pace: {pace}
        timeout_s: {timeout_s}
        torch_threads: 1
        telemetry_hz: 0
        criteria: {{min_frames: 8, min_seconds: 0.1}}
        defaults: {{device: cpu, dtype: float32, compile: off, cuda_graphs: off}}
        runs:
          - name: {RUN}
        """))
    return path


def _processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(text in part for part in (proc.info["cmdline"] or [])):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return [p for p in found if p.pid != os.getpid()]


def _wait_gone(text: str, within_s: float = 60.0) -> list[psutil.Process]:
    deadline = time.monotonic() + within_s
    left = _processes_mentioning(text)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in _processes_mentioning(text) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return left


# -- without a cluster ---------------------------------------------------------------------------------------

def test_placement_picks_nodes_with_the_resources() -> None:
    nodes = [NodeInfo("aa11", "gpu1", "127.0.0.1", True, {"CPU": 8, "GPU": 1, "accelerator_type:H100": 1}),
             NodeInfo("bb22", "gpu2", "127.0.0.1", True, {"CPU": 8, "GPU": 2, "bench": 1}),
             NodeInfo("cc33", "cpu1", "127.0.0.1", True, {"CPU": 4}),
             NodeInfo("dd44", "dead", "127.0.0.1", False, {"CPU": 8, "GPU": 1})]
    ids = lambda chosen: [n.node_id for n in chosen]  # noqa: E731
    assert ids(choose_nodes(nodes, Requirement())) == ["aa11", "bb22", "cc33"]
    assert ids(choose_nodes(nodes, Requirement(num_gpus=1))) == ["aa11", "bb22"]
    assert ids(choose_nodes(nodes, Requirement(num_gpus=1, accelerator_type="H100"))) == ["aa11"]
    assert ids(choose_nodes(nodes, Requirement(resources={"bench": 1}))) == ["bb22"]
    assert ids(choose_nodes(nodes, Requirement(resources={"nowhere": 1}))) == []
    # Named nodes are taken as named (a dead one too: Ray's refusal becomes its record).
    assert ids(choose_nodes(nodes, Requirement(), ["cc", "dd"])) == ["cc33", "dd44"]
    assert parse_resources(["bench=2", "x"]) == {"bench": 2.0, "x": 1.0}
    for bad in (["=1"], ["a=b"], ["a=0"]):
        with pytest.raises(PlacementError):
            parse_resources(bad)


def test_buyer_order_go_first_then_deployable_cost_then_p99() -> None:
    def m(host: str, verdict, cost=None, p99=None, status="ok", lockstep=None) -> FleetMachine:  # noqa: ANN001
        return FleetMachine(hostname=host, scenario="s", status=status, verdict=verdict,
                            cost_per_conversation_hour=cost, p99_ms=p99, lockstep_cost_per_conversation_hour=lockstep)

    # go-dear would be the cheapest if a lockstep batch were deployable: it is not, so its lockstep cost is ignored.
    machines = [m("nogo", "NO-GO", p99=90.0), m("failed", None, status="failed"), m("go-fast", "GO", p99=40.0),
                m("go-cheap", "GO", cost=0.2, p99=60.0, lockstep=0.1), m("go-dear", "GO", cost=0.9, p99=30.0,
                                                                          lockstep=0.01)]
    assert [x.hostname for x in buyer_order(machines)] == ["go-cheap", "go-dear", "go-fast", "nogo", "failed"]


def test_fleet_html_ranks_by_server_processes_and_shows_lockstep_apart() -> None:
    from datetime import datetime, timezone

    from harness.fleet.render import render_fleet_html
    from harness.records.fleet import Fleet

    machines = buyer_order([
        FleetMachine(hostname="batcher", scenario="s", status="ok", verdict="GO", server_processes=1,
                     server_processes_how="measured", cost_per_conversation_hour=2.0, lockstep_sessions=16,
                     lockstep_cost_per_conversation_hour=0.125),
        FleetMachine(hostname="many", scenario="s", status="ok", verdict="GO", server_processes=4,
                     server_processes_how="predicted", cost_per_conversation_hour=0.5)])
    html = render_fleet_html(Fleet(harness_version="x", created_at=datetime.now(timezone.utc), scenarios=["s"],
                                   machines=machines))
    assert html.index("many") < html.index("batcher")  # 4 processes beat 16 lockstep sessions no server runs
    assert "4 (predicted)" in html and "16 ($0.125)" in html and "need a batching server" in html


def test_fleet_version_1_keeps_its_lockstep_figure_apart(tmp_path: Path) -> None:
    (tmp_path / "fleet.json").write_text(json.dumps({
        "schema_name": "harness.fleet", "schema_version": 1, "harness_version": "x",
        "created_at": "2026-01-01T00:00:00Z", "scenarios": ["s"],
        "machines": [{"scenario": "s", "status": "ok", "capacity": 6, "cost_per_conversation_hour": 0.5}]}))
    machine = load_fleet(tmp_path).machines[0]
    assert (machine.lockstep_sessions, machine.lockstep_cost_per_conversation_hour) == (6, 0.5)
    assert machine.server_processes is None and machine.cost_per_conversation_hour is None


def test_load_fleet_explains_bad_files(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    with pytest.raises(FleetFileError, match="no such fleet file"):
        load_fleet(missing)
    bad = tmp_path / "fleet.json"
    bad.write_text("{\n  oops")
    with pytest.raises(FleetFileError, match=r"fleet.json:2: not valid JSON"):
        load_fleet(bad)
    bad.write_text(json.dumps({"schema_name": "harness.results", "schema_version": 1}))
    with pytest.raises(FleetFileError, match="not a harness fleet file"):
        load_fleet(tmp_path)
    bad.write_text(json.dumps({"schema_name": "harness.fleet", "schema_version": 9}))
    with pytest.raises(FleetFileError, match="version 9 is not supported"):
        load_fleet(bad)
    bad.write_text(json.dumps({"schema_name": "harness.fleet", "schema_version": 1, "harness_version": "x",
                               "created_at": "2026-01-01T00:00:00Z", "scenarios": ["s"],
                               "machines": [{"scenario": "s", "status": "maybe"}]}))
    with pytest.raises(FleetFileError, match=r"machines\.0\.status"):
        load_fleet(bad)
    assert is_fleet(tmp_path) and not is_fleet(tmp_path / "results.json")


def test_without_ray_fleet_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import harness.fleet

    monkeypatch.setattr(harness.fleet, "ray_available", lambda: False)
    code = cli_main(["fleet", "run", str(_scenario(tmp_path, "s")), "--local-cluster", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'harness[fleet]'" in err and "Traceback" not in err


_ORPHAN_MAKER = (
    "import subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
    "print(p.pid, flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
    "sys.exit(3)\n")


def _supervised(tmp_path: Path, linger_s: float) -> tuple[subprocess.Popen, int]:
    """The supervisor over a child that starts a grandchild in its own session (as harness run starts workers)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.fleet.supervise", str(tmp_path), "--", sys.executable,
                             "-c", _ORPHAN_MAKER, str(linger_s)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    grandchild = int(proc.stdout.readline())
    return proc, grandchild


def test_supervisor_leaves_no_orphan(tmp_path: Path) -> None:
    proc, grandchild = _supervised(tmp_path, 0.2)
    assert proc.wait(timeout=60) == 0
    assert json.loads((tmp_path / "exit.json").read_text()) == {"exit_code": 3}
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_supervisor_killed_by_its_parent_kills_the_tree(tmp_path: Path) -> None:
    proc, grandchild = _supervised(tmp_path, 120)
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int((tmp_path / "pid").read_text())
    proc.send_signal(signal.SIGTERM)  # what PR_SET_PDEATHSIG delivers when the fleet task's worker dies
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    for pid in (child, grandchild):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@needs_ray
def test_fleet_driver_never_imports_torch() -> None:
    code = ("import sys\nimport harness.cli.fleet, harness.fleet.driver, harness.fleet.local, harness.fleet.node_task\n"
            "print(','.join(m for m in ('torch', 'moshi') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


# -- on a real 2-node cluster ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from harness.fleet.local import local_cluster

    parent = tmp_path_factory.mktemp("ray")
    token_file = Path.home() / ".ray" / "auth_token"
    had_token, had_tmp_ray = token_file.exists(), Path("/tmp/ray").exists()
    root = None
    try:
        with local_cluster(2, cpus_per_node=1, parent=parent, extra_resources={"fleet_test": 1}) as running:
            root = running.root
            assert len(running.node_ids) == 2
            yield running
    finally:
        if root is not None:
            # Every Ray process carries its session folder (under root, or the short link to it) in its
            # command line; none may survive, and the folders must be gone.
            assert not [p.pid for p in _processes_mentioning("hray-")
                        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and
                        any(str(root) in c or "/tmp/hray-" in c for c in p.cmdline())]
            assert not root.exists()
            assert not list(parent.iterdir()), "a temp folder was left behind"
        assert token_file.exists() == had_token, "a Ray auth token file was written"
        assert Path("/tmp/ray").exists() == had_tmp_ray, "Ray wrote /tmp/ray"


@needs_ray
@pytest.mark.slow
def test_scenario_on_both_nodes_merged(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    from harness.fleet.driver import FleetOptions, run_fleet

    loaded = load_scenario(_scenario(tmp_path, "fleet-both"))
    events = []
    out = tmp_path / "fleet"
    options = FleetOptions(out_dir=out, requirement=Requirement(resources={"fleet_test": 1}), placement_timeout_s=120,
                           scratch_root=str(tmp_path / "scratch"), cluster="test")
    fleet = run_fleet([loaded], options, events.append)

    assert {m.node_id for m in fleet.machines} == set(cluster.node_ids)
    started = [e.started for e in events if e.kind == "started"]
    assert {s.node_id for s in started} == set(cluster.node_ids)
    assert len({s.harness_pid for s in started}) == 2
    for machine in fleet.machines:
        assert machine.status == "ok", machine.reason
        assert machine.verdict in ("GO", "NO-GO") and machine.best == RUN and machine.p99_ms > 0
        assert machine.torch and machine.fingerprint and machine.runs_ok == 1
        assert machine.server_processes is None and machine.cost_per_conversation_hour is None
        assert machine.lockstep_sessions is None
        assert (out / machine.results_dir / "results.json").is_file()
        assert (out / machine.report).is_file()
    # Copied back from each node's own folder, which is removed there.
    assert not list((tmp_path / "scratch").iterdir())
    assert load_fleet(out) == fleet
    assert [folder for _, folder in machine_results(out)] == [(out / m.results_dir).resolve()
                                                              for m in fleet.machines]
    html = (out / "fleet.html").read_text()
    for machine in fleet.machines:
        assert f'href="{machine.report}"' in html and machine.node_id[:12] in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    # compare and history take the fleet machine by machine
    done = run_cli("compare", str(out), str(out))
    assert done.returncode in (0, 6), done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("| cpu-fp32-eager |") == len(fleet.machines)
    history = run_cli("history", "add", str(out), "--dir", str(tmp_path / "history"))
    assert history.returncode == 0 and history.stdout.count("added:") == len(fleet.machines)


def _kill_when_mid_run(kill_ray_worker_of: str, pids: dict[str, int]):  # noqa: ANN202
    """on_event: once `harness run` on a node has a worker of its own, kill the Ray worker (one node) or
    `harness run` itself (the other)."""
    def on_event(event) -> None:  # noqa: ANN001
        if event.kind != "started":
            return
        started = event.started

        def measuring(harness: psutil.Process) -> bool:
            """`harness run` has started the worker of the scenario's run (after its probe worker)."""
            try:
                return any(f"{RUN}/job.json" in " ".join(c.cmdline()) for c in harness.children())
            except psutil.Error:
                return False

        def kill() -> None:
            harness = psutil.Process(started.harness_pid)
            deadline = time.monotonic() + 150
            while not measuring(harness) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
            victim = started.task_pid if started.node_id == kill_ray_worker_of else started.harness_pid
            pids[started.node_id] = victim
            os.kill(victim, signal.SIGKILL)

        threading.Thread(target=kill, daemon=True).start()
    return on_event


@needs_ray
@pytest.mark.slow
def test_task_killed_mid_run_is_a_failed_record(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    from harness.fleet.driver import FleetOptions, run_fleet

    # Paced in real time: 2000 frames would take 160 s, so the kill always lands mid-run.
    loaded = load_scenario(_scenario(tmp_path, "fleet-kill", frames=2000, pace="realtime"))
    ray_worker_node, harness_node = cluster.node_ids
    pids: dict[str, int] = {}
    out = tmp_path / "fleet"
    fleet = run_fleet([loaded], FleetOptions(out_dir=out, placement_timeout_s=120, shared_dir=True, cluster="test"),
                      _kill_when_mid_run(ray_worker_node, pids))

    by_node = {m.node_id: m for m in fleet.machines}
    assert set(by_node) == set(cluster.node_ids) and set(pids) == set(cluster.node_ids)
    assert by_node[ray_worker_node].status == "failed"
    assert "Ray worker running `harness run`" in by_node[ray_worker_node].reason
    assert "died mid-run" in by_node[ray_worker_node].reason
    assert by_node[harness_node].status == "failed"
    assert by_node[harness_node].reason.startswith("harness run was killed by SIGKILL")
    for machine in fleet.machines:
        # No verdict (the run never finished), but on the shared folder what the node wrote before the kill
        # (its machine facts, its probe) is kept and linked.
        assert machine.verdict is None
        assert machine.results_dir and (out / machine.results_dir / "results.json").is_file()
        assert machine.fingerprint and machine.torch
    assert load_fleet(out).machines == fleet.machines
    # Nothing of the killed runs survives: `harness run` dies with its Ray worker, the measuring worker with it.
    assert not _wait_gone(str(tmp_path)), "processes of the killed runs are still alive"


@needs_ray
@pytest.mark.slow
def test_unsatisfiable_requests_fail_after_the_placement_timeout(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    from harness.fleet.driver import FleetOptions, run_fleet

    loaded = load_scenario(_scenario(tmp_path, "fleet-nowhere"))
    fleet = run_fleet([loaded], FleetOptions(out_dir=tmp_path / "a", requirement=Requirement(
        resources={"no_such_gpu": 1}), placement_timeout_s=3, cluster="test"))
    [machine] = fleet.machines
    assert machine.status == "failed" and machine.node_id is None and machine.results_dir is None
    assert "not placed within 3 s" in machine.reason and "no_such_gpu=1" in machine.reason

    # Nodes named by id: one that can never hold the request, one that does not exist. Ray refuses both
    # (hard node affinity), and each refusal is that machine's record.
    missing = "ff" * 28
    fleet = run_fleet([loaded], FleetOptions(out_dir=tmp_path / "b", requirement=Requirement(num_cpus=64),
                                             node_ids=[cluster.node_ids[0], missing], placement_timeout_s=3,
                                             cluster="test"))
    by_node = {m.node_id: m for m in fleet.machines}
    assert set(by_node) == {cluster.node_ids[0], missing}
    for machine in fleet.machines:
        assert machine.status == "failed" and machine.results_dir is None
    too_small = by_node[cluster.node_ids[0]].reason
    assert "64 CPU" in too_small and ("Ray cannot place the task" in too_small or "not placed within 3 s" in too_small)
    assert by_node[missing].reason.startswith(f"could not submit the task: Invalid node_id '{missing}'")
    assert load_fleet(tmp_path / "b").machines == fleet.machines
