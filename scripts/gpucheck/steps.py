"""What each step does. A `harness run` step writes its own results folder under runs/ (merged at the end)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from gpucheck.core import REPO, GpuCheck, Step, StepSkipped, signal_group

CORE_RUNS = ("bf16-eager", "bf16-graphs", "fp16-graphs")
INT8_RUNS = ("int8-graphs", "int8-eager")
PACKAGES = ("torch", "moshi", "pydantic", "sphn", "bitsandbytes", "accelerate", "triton")
_VERSIONS = ("import importlib.metadata as m, json\nout = {}\nfor n in %r:\n    try:\n        out[n] = m.version(n)\n"
             "    except m.PackageNotFoundError:\n        out[n] = None\nprint(json.dumps(out))")


def run_records(folder: Path) -> list[dict]:
    """The runs of a results folder as plain JSON (gpu-check reads only names, status, reason and p50)."""
    try:
        return list(json.loads((folder / "results.json").read_text(encoding="utf-8")).get("runs", []))
    except (OSError, ValueError):
        return []


def p50_ms(record: dict) -> Optional[float]:
    metrics = record.get("metrics") or {}
    return (metrics.get("ms_per_step") or {}).get("p50")


# --- wheels, probe, pytest ---------------------------------------------------------------------------------------

def wheels(check: GpuCheck, step: Step) -> None:
    found = sorted(check.wheels.glob("*.whl"))
    if not found:
        raise StepSkipped(f"no wheels in {check.wheels} (../shared/gpu/prepare-wheels makes them); this "
                          "interpreter's own packages are used")
    site = check.work / "site"
    rc, timed_out = check.sh(step, [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                    "--no-compile", "--disable-pip-version-check", "--target", str(site),
                                    *map(str, found)], check.step_left())
    check.finish(step, rc, timed_out, "pip install")
    check.facts["wheels"] = [w.name for w in found]
    if step.status == "running":
        check.add_path(str(site))  # moshi goes in without its torch<2.10 pin: --no-deps
        step.notes.append(f"{len(found)} wheels installed into {site} (first on PYTHONPATH)")


def wheels_then_versions(check: GpuCheck, step: Step) -> None:
    try:
        wheels(check, step)
    finally:  # what the harness will import, installed or not
        versions(check, step)


def versions(check: GpuCheck, step: Step) -> None:
    """The versions later steps will import (a carried wheel's too, which shows it is on their PYTHONPATH)."""
    out = check.work / "versions.json"
    carried = tuple(name.split("-")[0] for name in check.facts.get("wheels", []))  # type: ignore[union-attr]
    names = PACKAGES + tuple(n for n in carried if n not in PACKAGES)
    check.sh(step, [sys.executable, "-c", _VERSIONS % (names,)], min(60.0, check.step_left()), stdout_file=out)
    try:
        check.facts["packages"] = json.loads(out.read_text(encoding="utf-8"))
        step.notes.append("packages: " + ", ".join(f"{k} {v or 'missing'}" for k, v in check.facts["packages"].items()))
    except (OSError, ValueError):
        step.notes.append("package versions could not be read")


def probe(check: GpuCheck, step: Step) -> None:
    out = check.work / "probe.json"
    rc, timed_out = check.harness(step, "probe", "--json", limit_s=check.step_left(), stdout_file=out)
    step.exit_code = rc
    try:
        report = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        check.finish(step, rc or 1, timed_out, "harness probe (no JSON)")
        return
    checks = report.get("checks", [])
    for c in checks:
        check.say(f"  probe {c.get('name')}: {c.get('status')}: {c.get('finding', '')}")
    bad = [c.get("name") for c in checks if c.get("status") in {"warn", "fail"}]
    check.facts["probe_worst"] = report.get("worst")
    gpus = (report.get("machine") or {}).get("gpus") or []
    check.facts["gpu"] = gpus[0].get("name") if gpus else None
    step.notes.append(f"exit {rc}; warn or fail: {', '.join(map(str, bad)) or 'none'}"
                      + ("; interrupted at its time limit after it wrote its report" if timed_out else ""))


def gpu_test_files() -> list[str]:
    """Test modules that mark tests `gpu`: only these are collected, so that a module importing what the lent
    machine lacks (playwright, ray) cannot stop the GPU tests at collection."""
    return sorted(str(f.relative_to(REPO)) for f in (REPO / "tests").rglob("test_*.py")
                  if "mark.gpu" in f.read_text(encoding="utf-8", errors="replace"))


def pytest_gpu(check: GpuCheck, step: Step) -> None:
    files = gpu_test_files()
    if not files:
        raise StepSkipped("no test module marks a test gpu")
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", *files, "-q", "-rA", "-p", "no:cacheprovider",
           "--basetemp", str(check.work / "pytest-tmp"), "--junitxml", str(check.work / "pytest-gpu.xml")]
    if check.int8:
        cmd += ["-k", "int8"]
    rc, timed_out = check.sh(step, cmd, check.step_left())
    if rc == 5 and not timed_out:  # pytest: no test selected
        step.exit_code, step.reason = rc, "no GPU test selected"
        return
    check.finish(step, rc, timed_out, "pytest -m gpu")


# --- harness runs ------------------------------------------------------------------------------------------------

def _frames(check: GpuCheck) -> tuple[str, ...]:
    return ("--frames", str(check.preset.measure_frames)) if check.preset.measure_frames else ()


def harness_run(check: GpuCheck, step: Step, scenario: str, run: str, folder: str, *extra: str) -> list[dict]:
    """One `harness run --only RUN` into runs/FOLDER, ended by --time-limit within what is left; the step says what
    the run did (a run harness skipped, e.g. CUDA graphs on a CPU, makes the step skipped with harness's reason)."""
    out = check.work / "runs" / folder
    step.results_dir = str(out.relative_to(check.work))
    limit = check.step_left()
    rc, timed_out = check.harness(step, "run", scenario, "--only", run, "--out", str(out),
                                  "--time-limit", f"{max(limit - 5, 1):.0f}", *extra, limit_s=limit)
    records = run_records(out)
    check.finish(step, rc, timed_out, "harness run")
    for record in records:
        status, reason = record.get("status"), record.get("reason") or ""
        if status == "ok":
            step.notes.append(f"{record.get('name')}: ok, p50 {p50_ms(record):.1f} ms")
        if status == "skipped" and step.status == "running":
            step.status, step.reason = "skipped", f"harness skipped {record.get('name')}: {reason}"
        elif status == "failed":
            step.status, step.reason = "failed", f"{record.get('name')} failed: {reason or record.get('signal')}"
        elif status == "skipped" and step.status == "failed":  # interrupted after harness skipped the run
            step.notes.append(f"harness skipped {record.get('name')}: {reason}")
    if not records and step.status == "running":
        step.status, step.reason = "failed", "harness run left no results.json"
    return records


def core(check: GpuCheck, step: Step, run: str) -> None:
    harness_run(check, step, check.preset.scenario, run, run, *_frames(check))


def measured(check: GpuCheck, runs: tuple[str, ...]) -> dict[str, float]:
    """p50 ms of the core runs measured ok so far, by run name."""
    found: dict[str, float] = {}
    for run in runs:
        for record in run_records(check.work / "runs" / run):
            if record.get("name") == run and record.get("status") == "ok" and p50_ms(record) is not None:
                found[run] = float(p50_ms(record))  # type: ignore[arg-type]
    return found


def choose_fastest(check: GpuCheck) -> str:
    if check.fastest is None:
        times = measured(check, CORE_RUNS)
        if not times:
            raise StepSkipped("no core configuration was measured ok: nothing to take further")
        check.fastest = min(times, key=times.__getitem__)
        check.facts["core_p50_ms"] = times
    return check.fastest


def served_choice(fastest: str, times: dict[str, float]) -> str:
    """NVIDIA's server offers bf16 only: the fastest bf16 configuration measured, or (a rerun with --fastest and
    nothing measured) the bf16 counterpart of the fastest, with the same CUDA-graph setting."""
    bf16 = [run for run in times if run.startswith("bf16")]
    if times and not bf16:
        raise StepSkipped(f"no bf16 configuration was measured ok (NVIDIA's server offers bf16 only; fastest: {fastest})")
    return min(bf16, key=times.__getitem__) if bf16 else fastest.replace("fp16", "bf16")


def served(check: GpuCheck, step: Step) -> None:
    """The PersonaPlex server's frame (and its persona prefill) of the fastest bf16 configuration."""
    fastest = choose_fastest(check)
    choice = served_choice(fastest, measured(check, CORE_RUNS))
    if choice != fastest:
        step.notes.append(f"fastest is {fastest}; the server offers bf16 only, so {choice} is served")
    harness_run(check, step, check.preset.scenario, f"{choice}-server", "served", *_frames(check))


def capacity(check: GpuCheck, step: Step) -> None:
    fastest = choose_fastest(check)
    records = harness_run(check, step, check.preset.capacity_scenario, f"{fastest}-capacity", "capacity",
                          "--frames", str(check.preset.capacity_ticks))
    for record in records:
        cap = (record.get("metrics") or {}).get("capacity")
        if cap:
            step.notes.append(f"{cap.get('max_realtime_sessions')} sessions in real time, limited by "
                              f"{cap.get('limited_by')}; sizes tried: "
                              + ", ".join(f"{p.get('sessions')} {p.get('verdict')}" for p in cap.get("probes", [])))


def compile_fastest(check: GpuCheck, step: Step) -> None:
    fastest = choose_fastest(check)
    harness_run(check, step, check.preset.scenario, f"{fastest}-compile", "compile", *_frames(check))


def int8(check: GpuCheck, step: Step, run: str) -> None:
    harness_run(check, step, check.preset.scenario, run, run, *_frames(check))


# --- the served endpoint (issue 18), when this checkout has it --------------------------------------------------

_SERVE_FLAGS = ("--preset", "--weights", "--device", "--port")
_ENDPOINT_FLAGS = ("--sessions", "--seconds", "--out")


def _help(check: GpuCheck, command: str) -> Optional[str]:
    done = subprocess.run([sys.executable, "-m", "harness", command, "--help"], cwd=REPO, env=check.env,
                          capture_output=True, text=True, timeout=60)
    return done.stdout if done.returncode == 0 else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def endpoint(check: GpuCheck, step: Step) -> None:
    serve_help, endpoint_help = _help(check, "serve"), _help(check, "endpoint")
    if serve_help is None or endpoint_help is None:
        raise StepSkipped("this checkout has no `harness serve` / `harness endpoint` (issue 18)")
    missing = [f for f in _SERVE_FLAGS if f not in serve_help] + [f for f in _ENDPOINT_FLAGS if f not in endpoint_help]
    if missing:
        raise StepSkipped(f"harness serve/endpoint lack {', '.join(missing)}: update scripts/gpucheck/steps.py")
    folder = check.work / "endpoint"
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    p = check.preset
    serve_cmd = [sys.executable, "-m", "harness", "serve", "--preset", p.endpoint_preset, "--weights", "synthetic",
                 "--device", p.endpoint_device, "--port", str(port)]
    step.commands.append(serve_cmd)
    check.say("$ " + " ".join(serve_cmd) + " &")
    log = (folder / "serve.log").open("w", encoding="utf-8")
    server = subprocess.Popen(serve_cmd, cwd=REPO, env=check.env, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        deadline = started + max(check.step_left() - p.endpoint_seconds - 15, 1)
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                step.status = "failed"
                step.reason = (f"harness serve exited {server.returncode} before listening" if server.poll() is not None
                               else "harness serve did not listen within its time limit")
                return
            time.sleep(0.5)
        printed = re.search(r"wss?://\S+", (folder / "serve.log").read_text(encoding="utf-8", errors="replace"))
        url = printed.group(0) if printed else f"ws://127.0.0.1:{port}/api/chat"
        step.notes.append(f"server listening after {time.monotonic() - started:.0f} s: {url}")
        rc, timed_out = check.harness(step, "endpoint", url, "--sessions", "1", "--seconds", str(p.endpoint_seconds),
                                      "--out", str(folder / "result"), limit_s=check.step_left())
        if rc == 1 and not timed_out:  # harness endpoint: a caller failed; its row says why (a measurement)
            step.exit_code = rc
            step.notes.append("a caller failed: see endpoint/result/endpoint.json in the bundle")
        else:
            check.finish(step, rc, timed_out, "harness endpoint")
    finally:
        signal_group(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            signal_group(server.pid, signal.SIGKILL)
            server.wait()
        signal_group(server.pid, signal.SIGKILL)
        log.close()


# --- the order -------------------------------------------------------------------------------------------------

def step_names(int8: bool) -> list[str]:
    return ["wheels", "probe", "pytest-gpu", *(INT8_RUNS if int8 else
                                               (*CORE_RUNS, "served", "capacity", "endpoint", "compile"))]


def run_steps(check: GpuCheck) -> None:
    planned = [(name, check.preset.budgets[name]) for name in step_names(check.int8)
               if check.selected is None or name in check.selected]
    check.say("plan: " + ", ".join(f"{name} {budget:.0f} s" for name, budget in planned)
              + f" = {sum(b for _, b in planned):.0f} s of budgets for {check.left():.0f} s; a step starts only if its "
              "budget fits in what is left")
    check.step("wheels", lambda s: wheels_then_versions(check, s))
    check.step("probe", lambda s: probe(check, s))
    check.step("pytest-gpu", lambda s: pytest_gpu(check, s))
    if check.int8:
        for run in INT8_RUNS:
            check.step(run, lambda s, run=run: int8(check, s, run))
        return
    for run in CORE_RUNS:
        check.step(run, lambda s, run=run: core(check, s, run))
    check.step("served", lambda s: served(check, s))
    check.step("capacity", lambda s: capacity(check, s))
    check.step("endpoint", lambda s: endpoint(check, s))
    check.step("compile", lambda s: compile_fastest(check, s))
