"""A run disturbed on purpose, and the same configuration undisturbed: what the verdict says about each.

Runs personaplex-tiny (fp32, eager, CPU, 1000 ms budget) twice through the real runner. During the second, once
`--after` measured frames have passed, busy Python loops at normal priority are pinned with `taskset` to every core
the worker may use (`--hogs` per core) for `--seconds`, then stopped. Prints, per run: the verdict's headline,
p99, the disturbed frames the worker's own evidence flags (CPU time, run-queue wait), and the run's reasons.

    python -m tests.benchmarks.disturbed_run --out /tmp/disturbed      # about 2 x frames x step time

Not part of the suite (timings depend on the machine); the figures go in the issue's closing note.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from harness.contract.wire import ProgressEvent
from harness.records.schema import Session
from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner, WorkerHooks
from harness.stats.disturbance import spans
from harness.verdict.disturbed import frame_disturbance

SCENARIO = """
name: {name}
description: personaplex-tiny fp32 on the CPU, 1000 ms budget; {what}
preset: personaplex-tiny
frames: {frames}
warmup_frames: {warmup}
frame_budget_ms: 1000
persona: off
confirm_frames: 0
torch_threads: {threads}
criteria: {criteria}
runs:
  - {{name: tiny-fp32, device: cpu, dtype: float32}}
"""

HOG = "while True: pass"
WARMUP = 5


class Disturber:
    """Starts the hogs once the worker has measured `after` frames, stops them `seconds` later."""

    def __init__(self, after: int, seconds: float, hogs_per_core: int) -> None:
        self.after, self.seconds, self.per_core = after, seconds, hogs_per_core
        self.pid: int | None = None
        self.window: tuple[float, float] | None = None
        self._started = False

    def started(self, run_name: str, pid: int) -> None:
        self.pid = pid

    def event(self, run_name: str, event: ProgressEvent) -> None:
        if event.event != "frame" or event.warmup or self._started or self.pid is None:
            return
        if event.index - WARMUP >= self.after:  # the index counts warmup frames too
            self._started = True
            threading.Thread(target=self._disturb, daemon=True).start()

    def _disturb(self) -> None:
        cores = sorted(os.sched_getaffinity(self.pid)) if self.pid else sorted(os.sched_getaffinity(0))
        hogs = [subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", HOG])
                for core in cores for _ in range(self.per_core)]
        began = time.monotonic()
        time.sleep(self.seconds)
        for hog in hogs:
            hog.terminate()
        for hog in hogs:
            hog.wait()
        self.window = (began, time.monotonic())
        print(f"disturbed: {len(hogs)} busy loop(s) pinned to core(s) {cores} for {self.seconds:g} s", flush=True)


def run(folder: Path, args: argparse.Namespace, what: str, hooks: WorkerHooks) -> Session:
    scenario = folder / f"{what}.yaml"
    scenario.write_text(SCENARIO.format(name=what, what=what, frames=args.frames, warmup=WARMUP, threads=args.threads,
                                        criteria=args.criteria))
    out = folder / what
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    runner = ScenarioRunner(load_scenario(scenario), out, RunOptions(), Console(stderr=True), hooks)
    return runner.run(load_scenario(scenario).runs)


def describe(label: str, session: Session) -> None:
    verdict = session.verdict
    result = session.runs[0]
    assert verdict is not None
    print(f"\n== {label}: {verdict.headline}")
    if result.metrics is None:
        print(f"   {result.status}: {result.reason}")
        return
    m = result.metrics
    found = frame_disturbance(m, result.config.device.value)
    print(f"   {m.frames} frames, p50 {m.ms_per_step.p50:.0f} ms, p99 {m.ms_per_step.p99:.0f} ms, max "
          f"{m.ms_per_step.max:.0f} ms; disturbed frames: {spans(found.frames) or 'none'}")
    if m.frame_cpu is not None and m.frame_cpu.run_wait_ms:
        worst = max(range(len(m.samples_ms)), key=lambda i: m.samples_ms[i])
        print(f"   slowest frame {worst}: wall {m.samples_ms[worst]:.0f} ms, main thread CPU "
              f"{m.frame_cpu.cpu_ms[worst]:.0f} ms, run-queue wait {m.frame_cpu.run_wait_ms[worst]:.0f} ms, "
              f"other processes' CPU {m.frame_cpu.others_cpu_ms[worst]:.0f} ms")
    for assessment in verdict.assessments:
        for line in assessment.reasons + assessment.flags:
            print(f"   - {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("reports/disturbed"))
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--after", type=int, default=300, help="measured frames before the hogs start")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--hogs", type=int, default=4, help="busy loops per core")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the worker")
    parser.add_argument("--criteria", default="{late_frame_target: 0.05}",
                        help="YAML flow mapping (default: 5%% at 99%% in bursts of 10: 900 clean frames certify it)")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset is not installed (util-linux)")
    args.out.mkdir(parents=True, exist_ok=True)
    quiet = run(args.out, args, "undisturbed", WorkerHooks())
    disturber = Disturber(args.after, args.seconds, args.hogs)
    loud = run(args.out, args, "disturbed", WorkerHooks(started=disturber.started, event=disturber.event))
    describe("undisturbed", quiet)
    describe("disturbed on purpose", loud)


if __name__ == "__main__":
    main()
