"""What the user sees while a scenario runs: a live progress display and a summary table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.contract.wire import ProgressEvent
from harness.records.schema import RunResult, Session
from harness.records.text import console_text

_STATUS_STYLE = {"ok": "green", "failed": "red", "skipped": "yellow", "interrupted": "magenta"}
_OUTCOME_STYLE = {"real time": "green", "not real time": "red", "not faithful": "red", "not enough evidence": "yellow",
                  "re-run": "yellow", "invalid": "red", "failed": "red", "skipped": "yellow"}
_PHASE_TEXT = {"import": "importing torch", "build": "building model", "frames": "running frames",
               "done": "finishing"}


def _gib(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


@dataclass(frozen=True)
class Work:
    """A worker process the session expects to run: `kind` screen | full | certify | confirm; `paced_ms`: each
    frame waits for its audio (its time is known in advance)."""

    kind: str
    frames: int
    paced_ms: Optional[float] = None


class Forecast:
    """Time left, from what this session measured so far: the mean measured frame (fast pace) and the mean time a
    worker took from its start to its first measured frame (imports, load, compile, warmup, prefill). Unknown until
    the first worker has measured a frame."""

    def __init__(self) -> None:
        self.pending: list[Work] = []
        self._frames_ms = 0.0
        self._frames = 0
        self._startups: list[float] = []
        self._started_at: Optional[float] = None
        self._current_left = 0  # frames of the running process still to come
        self._current_paced: Optional[float] = None

    def start(self, kind: str, frames: int, paced_ms: Optional[float]) -> None:
        match = next((w for w in self.pending if w.kind == kind), None)
        if match is not None:
            self.pending.remove(match)
        self._started_at = time.monotonic()
        self._current_left, self._current_paced = frames, paced_ms

    def frame(self, index: int, total: int, warmup: bool, ms: float) -> None:
        if warmup:
            return
        if self._started_at is not None:
            self._startups.append(time.monotonic() - self._started_at)
            self._started_at = None
        if self._current_paced is None:
            self._frames_ms += ms
            self._frames += 1
        self._current_left = max(0, total - index - 1)

    def left_s(self) -> Optional[float]:
        if not self._frames or not self._startups:
            return None
        frame_ms = self._frames_ms / self._frames
        startup = sum(self._startups) / len(self._startups)
        left = self._current_left * (self._current_paced or frame_ms) / 1e3
        if self._started_at is not None:  # the running process has not measured yet: its start-up is still ahead
            left += max(0.0, startup - (time.monotonic() - self._started_at))
        for work in self.pending:
            left += startup + work.frames * (work.paced_ms or frame_ms) / 1e3
        return left


def left_text(seconds: Optional[float]) -> str:
    if seconds is None:
        return "time left: estimating"
    if seconds < 90:
        return f"~{seconds:.0f} s left"
    return f"~{seconds / 60:.0f} min left"


class RunDisplay:
    """Live progress of the runs; every finished run also leaves one plain line (readable in CI logs)."""

    def __init__(self, console: Console, total_runs: int) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.fields[run]}"), TextColumn("{task.description}"),
            BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=console, transient=True,
        )
        self.total_runs = total_runs
        self._task: Optional[TaskID] = None
        self._index = 0
        self.forecast = Forecast()

    def __enter__(self) -> "RunDisplay":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def plan(self, works: list[Work]) -> None:
        """The worker processes the session expects (the forecast's remaining work); the count shown is theirs."""
        self.forecast.pending = list(works)
        self.total_runs = max(self.total_runs, len(works))

    def start(self, name: str, what: str, frames: Optional[int] = None, paced_ms: Optional[float] = None,
              kind: str = "full") -> None:
        self._index += 1
        self.total_runs = max(self.total_runs, self._index + len(self.forecast.pending) - 1)
        label = f"[{self._index}/{self.total_runs}] {name}"
        self.forecast.start(kind, frames or 0, paced_ms)
        # Names and descriptions are the user's text: escaped, so `[/bold]` in a run name shows as written.
        self._task = self.progress.add_task(console_text(what), total=None, run=console_text(label), last="",
                                            left=left_text(self.forecast.left_s()))

    def event(self, event: ProgressEvent) -> None:
        if self._task is None:
            return
        if event.event == "phase":
            self.progress.update(self._task, description=_PHASE_TEXT.get(event.phase, event.phase))
        else:
            kind = "warmup" if event.warmup else "measured"
            self.forecast.frame(event.index, event.total, event.warmup, event.ms)
            self.progress.update(self._task, total=event.total, completed=event.index + 1,
                                 description=f"frames ({kind})", last=f"{event.ms:7.1f} ms",
                                 left=left_text(self.forecast.left_s()))

    def note(self, text: str) -> None:
        self.console.print(console_text(text), highlight=False, soft_wrap=True)

    def finish(self, result: RunResult) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
            self._task = None
        style = _STATUS_STYLE[result.status]
        line = f"[{style}]{result.status:>7}[/] {console_text(result.name)}"
        if result.metrics is not None:
            m = result.metrics
            line += (f"  p50 {m.ms_per_step.p50:.1f} ms  p99 {m.ms_per_step.p99:.1f} ms  RTF {m.rtf:.2f}"
                     f"  peak RSS {_gib(m.peak_rss_bytes)}  (pid {result.worker_pid})")
        else:
            line += f"  {console_text(result.reason)}"
        if result.diagnosis is not None:
            line += (f"\n        [bold]cause[/]: {console_text(result.diagnosis.cause)}"
                     f"\n        [bold]fix[/]:   {console_text(result.diagnosis.remedy)}")
        self.console.print(line, highlight=False, soft_wrap=True)


def _quantized_note(run: RunResult) -> str:
    q = run.engine.quantization if run.engine is not None else None
    if q is None:
        return ""
    return (f"{q.scheme}: {q.kernel_path}, LM {q.lm_bytes_after / 2**20:.0f} MiB (from {q.lm_bytes_before / 2**20:.0f}),"
            f" weight error {q.weight_rel_rms_error:.2%}")


def summary_table(session: Session) -> Table:
    """One row a run, readable in 100 columns: run names are never cut (the note column wraps instead); the
    outcome is the verdict's where it has been decided (real time / not real time / not enough evidence / ...)."""
    budget = session.scenario.frame_budget_ms
    table = Table(title=f"{console_text(session.scenario.name)}: ms per {budget:g} ms frame "
                        "(RTF = step / budget; < 1 is faster than real time)", title_justify="left")
    outcomes = {a.name: a.outcome for a in session.verdict.assessments} if session.verdict is not None else {}
    table.add_column("run", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    for column in ("p50", "p99", "RTF", "memory"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("note", overflow="fold")
    for run in session.runs:
        m = run.metrics
        outcome = outcomes.get(run.name) or run.status
        style = _OUTCOME_STYLE.get(outcome, _STATUS_STYLE.get(run.status, "white"))
        if m is not None and run.status == "ok":
            memory = f"{_gib(m.cuda.peak_allocated_bytes)} GPU" if m.cuda else f"{_gib(m.peak_rss_bytes)} RSS"
            table.add_row(console_text(run.name), f"[{style}]{console_text(outcome)}[/]", f"{m.ms_per_step.p50:.1f}",
                          f"{m.ms_per_step.p99:.1f}", f"{m.rtf:.2f}", memory, _quantized_note(run))
        else:
            table.add_row(console_text(run.name), f"[{style}]{console_text(outcome)}[/]", "-", "-", "-", "-",
                          console_text(run.reason))
    return table
