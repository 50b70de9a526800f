"""The step runner: a total time, a budget per step, one log; commands in their own process groups.

A step starts only when its budget fits in what is left (the total less the bundling reserve); otherwise it is
recorded as skipped with that note. A started step is never allowed past what is left: its command is interrupted
with SIGINT (harness then writes what it measured) and killed after a grace, and the step is a failed record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]
SCHEMA = {"schema_name": "harness.gpu-check", "schema_version": 1}
KILL_GRACE_S = 10.0  # after SIGINT (harness keeps what it measured), before SIGKILL
STEP_LOG = "gpu-check.json"
CONSOLE_LOG = "gpu-check.log"


@dataclass(frozen=True)
class Preset:
    """Where and how big: the lent H200, or the CPU rehearsal. Budgets are estimates in seconds; the step log records
    what each step really took, so that the first GPU run can replace them with measurements."""

    name: str
    scenario: str
    capacity_scenario: str
    total_s: float  # the whole command, bundling included
    reserve_s: float  # kept for merging and bundling
    budgets: dict[str, float]
    capacity_ticks: int
    endpoint_preset: str
    endpoint_device: str
    endpoint_seconds: int
    # Frames per measured step: figures within the time box, not the 4606 that certify a verdict (which then reads
    # INCONCLUSIVE, and says so); None: the scenario's own.
    measure_frames: Optional[int] = None
    # A started step may take this many times its budget (never more than what is left), so that one step that hangs
    # or runs long cannot take the time of every step after it.
    overrun: float = 2.0


H200 = Preset(
    name="h200", scenario="scenarios/gpu-check-h200.yaml", capacity_scenario="scenarios/gpu-check-h200-capacity.yaml",
    total_s=420, reserve_s=25, capacity_ticks=60, endpoint_preset="personaplex-7b", endpoint_device="cuda",
    endpoint_seconds=20, measure_frames=500,
    # A harness run step = its probe (~10 s) + worker start and 7B build (~15 s) + warmup + the persona prefill
    # (127 LM steps, 10 ms server wait each) + 500 frames (published H100: 77.5 ms eager, 30.2 ms with graphs).
    # The capacity search stops itself (--time-limit) with what it measured: its budget is what one or two probes
    # need to start, and it may use up to twice that.
    budgets={"wheels": 20, "probe": 40, "pytest-gpu": 120, "bf16-eager": 85, "bf16-graphs": 60, "fp16-graphs": 60,
             "served": 60, "capacity": 60, "endpoint": 120, "compile": 150, "int8-graphs": 90, "int8-eager": 120},
)
# The int8 call (bitsandbytes travels alone): wheels, probe, the one int8 GPU test, int8 with and without graphs.
H200_INT8 = Preset(
    name="h200-int8", scenario=H200.scenario, capacity_scenario=H200.capacity_scenario, total_s=330, reserve_s=25,
    capacity_ticks=H200.capacity_ticks, endpoint_preset=H200.endpoint_preset, endpoint_device="cuda",
    endpoint_seconds=H200.endpoint_seconds, measure_frames=H200.measure_frames, budgets={**H200.budgets, "pytest-gpu": 60},
)
CPU = Preset(
    name="cpu", scenario="scenarios/gpu-check-cpu.yaml", capacity_scenario="scenarios/gpu-check-cpu-capacity.yaml",
    total_s=300, reserve_s=20, capacity_ticks=4, endpoint_preset="personaplex-tiny", endpoint_device="cpu",
    endpoint_seconds=8,
    # Two idle cores (a CI runner): a harness run step = its probe (~7 s) + a personaplex-tiny worker (~10 s); the
    # CUDA-graph runs are skipped here by harness, with their reason. Shared machines vary: steps may take 3x.
    budgets={"wheels": 10, "probe": 15, "pytest-gpu": 20, "bf16-eager": 25, "bf16-graphs": 12, "fp16-graphs": 12,
             "served": 25, "capacity": 35, "endpoint": 60, "compile": 60, "int8-graphs": 12, "int8-eager": 25},
    overrun=3.0,
)


@dataclass
class Step:
    name: str
    budget_s: float
    status: str = "pending"  # ok | failed | skipped
    reason: str = ""
    started_s: Optional[float] = None  # seconds since gpu-check started
    seconds: Optional[float] = None
    exit_code: Optional[int] = None
    commands: list[list[str]] = field(default_factory=list)
    results_dir: Optional[str] = None  # a harness results folder, relative to the work folder
    notes: list[str] = field(default_factory=list)


class StepSkipped(Exception):
    """A started step that found it has nothing to do here; the message is the reason."""


def plan_step(budget_s: float, left_s: float) -> Optional[str]:
    """None when a step of this budget fits in what is left, else the note that skips it."""
    if budget_s > left_s:
        return f"does not fit: needs ~{budget_s:.0f} s, {max(left_s, 0.0):.0f} s left"
    return None


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class GpuCheck:
    def __init__(self, preset: Preset, out: Path, work: Optional[Path], total_s: Optional[float] = None,
                 int8: bool = False, wheels: Optional[Path] = None, fastest: Optional[str] = None,
                 selected: Optional[set[str]] = None) -> None:
        self.preset, self.int8 = preset, int8
        self.t0 = time.monotonic()
        self.total_s = total_s or preset.total_s
        self.out = out.resolve()
        self.work = work.resolve() if work else Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.wheels = wheels or REPO / ".whl"
        self.fastest = fastest
        self.selected = selected
        self.log = (self.work / CONSOLE_LOG).open("a", encoding="utf-8")
        self.steps: list[Step] = []
        self.facts: dict[str, object] = {"mode": preset.name, "int8": int8, "python": sys.executable,
                                         "scenario": preset.scenario, "capacity_scenario": preset.capacity_scenario}
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="150")
        self.add_path(str(REPO))

    def add_path(self, folder: str) -> None:
        """Put a folder first on the PYTHONPATH every later command gets."""
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, self.env.get("PYTHONPATH", "")) if p)

    # --- time and output -------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        """Seconds the steps may still use: the total less what passed and the bundling reserve."""
        return self.total_s - self.preset.reserve_s - self.elapsed()

    def step_left(self) -> float:
        """Seconds the running step may still use: what is left, and at most `overrun` times its budget."""
        step = self.steps[-1]
        spent = self.elapsed() - (step.started_s or 0.0)
        return min(self.left(), self.preset.overrun * step.budget_s - spent)

    def say(self, text: str) -> None:
        line = f"[gpu-check {self.elapsed():4.0f} s] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def _echo(self, chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()
        self.log.write(chunk)

    def sh(self, step: Step, cmd: list[str], limit_s: float, stdout_file: Optional[Path] = None) -> tuple[int, bool]:
        """Run a command in its own process group with its output in the log (stdout into stdout_file when given),
        interrupted at limit_s (SIGINT: harness writes what it measured) and killed after a grace."""
        step.commands.append(cmd)
        self.say("$ " + " ".join(arg if "\n" not in arg else "'<script>'" for arg in cmd))
        sink = stdout_file.open("w", encoding="utf-8") if stdout_file else None
        proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=sink if sink else subprocess.PIPE,
                                stderr=subprocess.PIPE if sink else subprocess.STDOUT, start_new_session=True)
        stream = proc.stderr if sink else proc.stdout
        assert stream is not None
        os.set_blocking(stream.fileno(), False)
        deadline, timed_out = time.monotonic() + max(limit_s, 1.0), False
        try:
            while True:
                data = stream.read()
                if data:
                    self._echo(data.decode("utf-8", errors="replace"))
                if proc.poll() is not None:
                    rest = stream.read()
                    if rest:
                        self._echo(rest.decode("utf-8", errors="replace"))
                    break
                if time.monotonic() > deadline:
                    if not timed_out:
                        timed_out = True
                        self.say(f"time limit of {limit_s:.0f} s reached: interrupting (what was measured is kept)")
                        signal_group(proc.pid, signal.SIGINT)
                        deadline = time.monotonic() + KILL_GRACE_S
                    else:
                        signal_group(proc.pid, signal.SIGKILL)
                time.sleep(0.2)
        except BaseException:  # gpu-check itself interrupted: the command (its own session) is interrupted too
            signal_group(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            raise
        finally:
            signal_group(proc.pid, signal.SIGKILL)  # nothing it started outlives it
            proc.wait()
        if sink:
            sink.close()
        self.log.flush()
        return proc.returncode, timed_out

    def harness(self, step: Step, *args: str, limit_s: float, stdout_file: Optional[Path] = None) -> tuple[int, bool]:
        return self.sh(step, [sys.executable, "-m", "harness", *args], limit_s, stdout_file)

    # --- steps -----------------------------------------------------------------------------------------------------
    def step(self, name: str, body: Callable[[Step], None]) -> Step:
        step = Step(name=name, budget_s=self.preset.budgets[name])
        self.steps.append(step)
        index = len(self.steps)
        if self.selected is not None and name not in self.selected:
            step.reason = "not selected (--steps)"
        else:
            step.reason = plan_step(step.budget_s, self.left()) or ""
        if step.reason:
            step.status = "skipped"
            self.say(f"step {index} {name}: skipped: {step.reason}")
            self.write_log()
            return step
        self.say(f"step {index} {name}: budget {step.budget_s:.0f} s ({self.left():.0f} s left)")
        step.status, step.started_s = "running", round(self.elapsed(), 1)
        try:
            body(step)
        except StepSkipped as skip:
            step.status, step.reason = "skipped", str(skip)
        except Exception as exc:  # a broken step is a record; the next step still runs
            step.status, step.reason = "failed", f"{type(exc).__name__}: {exc}"
        except KeyboardInterrupt:
            step.status, step.reason = "failed", "interrupted (Ctrl-C)"
            step.seconds = round(max(self.elapsed() - step.started_s, 0.0), 1)
            self.write_log()
            raise
        if step.status == "running":
            step.status = "ok"
        step.seconds = round(max(self.elapsed() - step.started_s, 0.0), 1)
        over = f", {step.seconds - step.budget_s:.0f} s over its budget" if step.seconds > step.budget_s else ""
        self.say(f"step {index} {name}: {step.status} in {step.seconds:.0f} s{over}"
                 + (f": {step.reason}" if step.reason else ""))
        self.write_log()
        return step

    def finish(self, step: Step, rc: int, timed_out: bool, what: str) -> None:
        step.exit_code = rc
        if timed_out:
            step.status, step.reason = "failed", f"{what} interrupted at its time limit"
        elif rc != 0:
            step.status, step.reason = "failed", f"{what} exited {rc}"

    def write_log(self) -> None:
        data = {**SCHEMA, "preset": self.preset.name, "facts": self.facts, "fastest": self.fastest,
                "elapsed_s": round(self.elapsed(), 1), "budget_s": self.total_s,
                "steps": [asdict(s) for s in self.steps]}
        (self.work / STEP_LOG).write_text(json.dumps(data, indent=2), encoding="utf-8")
