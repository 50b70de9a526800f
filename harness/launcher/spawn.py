"""Start one worker process, follow its progress pipe, enforce its timeout, collect what it left.

The parent waits in `select` on the progress pipe (half-second ticks), never busy-waits, and
keeps the worker's stdout/stderr in log files. The worker runs in its own session so a timeout or
an interrupt kills it together with anything it started (torch.compile's helper processes).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import psutil
from pydantic import ValidationError

from harness.contract.progress import PROGRESS_FD_ENV
from harness.contract.wire import ProgressEvent
from harness.records.validate import wire_from_python

TICK_S = 0.5
TERM_GRACE_S = 5.0
STDERR_TAIL_BYTES = 6000
STDERR_TAIL_LINES = 40

EventCallback = Callable[[ProgressEvent], None]


@dataclass
class WorkerOutcome:
    pid: int
    exit_code: Optional[int]  # None when killed by a signal
    signal_name: Optional[str]
    timed_out: bool
    wall_s: float
    stderr_tail: str
    last_phase: str = ""
    max_rss_bytes: Optional[int] = None  # highest worker RSS the parent saw (sampled each tick)
    frames_ms: list[float] = field(default_factory=list)  # every frame reported, warmup included


def tail_text(path: Path, max_bytes: int = STDERR_TAIL_BYTES, max_lines: int = STDERR_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-max_lines:])


def _watch(pid: int) -> Optional[psutil.Process]:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _sample_rss(process: Optional[psutil.Process], outcome: WorkerOutcome) -> None:
    if process is None:
        return
    try:
        rss = process.memory_info().rss
    except psutil.Error:
        return
    outcome.max_rss_bytes = max(outcome.max_rss_bytes or 0, rss)


PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """In the child, before exec: the kernel kills it when the parent dies, however the parent dies. The worker
    runs in a session of its own (so that its group can be killed), so nothing else would reach it after a
    `kill -9` of `harness run`: it would keep running under PID 1 with the model in memory."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: SIGTERM/SIGHUP/Ctrl-C still kill the group on the way out
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _preexec(limit: Optional[int]) -> Callable[[], None]:
    """What the child does before exec: die with its parent; cap its data segment (heap and anonymous mappings)
    when a limit is set, so that allocations beyond it fail cleanly."""
    parent = os.getpid()

    def apply() -> None:
        _die_with(parent)
        if limit:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return apply


def kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(proc: subprocess.Popen) -> None:
    kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()


class _LineReader:
    def __init__(self, on_event: EventCallback, outcome: WorkerOutcome) -> None:
        self._buffer = b""
        self._on_event = on_event
        self._outcome = outcome

    def feed(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = wire_from_python(ProgressEvent, json.loads(line))
            except (ValueError, ValidationError):
                continue  # a torn or foreign line is not worth failing a run over
            if event.event == "frame":
                self._outcome.frames_ms.append(event.ms)
            else:
                self._outcome.last_phase = event.phase
            self._on_event(event)


def run_worker(job_file: Path, env: dict[str, str], timeout_s: float, log_dir: Path, log_name: str,
               on_event: EventCallback, on_start: Optional[Callable[[int], None]] = None,
               memory_limit_bytes: Optional[int] = None, python: str = sys.executable) -> WorkerOutcome:
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = log_dir / f"{log_name}.stdout.log"
    stderr_path = log_dir / f"{log_name}.stderr.log"
    read_fd, write_fd = os.pipe()
    env = dict(env)
    env[PROGRESS_FD_ENV] = str(write_fd)
    start = time.monotonic()
    try:
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen([python, "-m", "harness.worker", str(job_file)], stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL, env=env, pass_fds=(write_fd,),
                                    start_new_session=True, preexec_fn=_preexec(memory_limit_bytes))
    finally:
        os.close(write_fd)
    outcome = WorkerOutcome(pid=proc.pid, exit_code=None, signal_name=None, timed_out=False, wall_s=0.0,
                            stderr_tail="")
    reader = _LineReader(on_event, outcome)
    if on_start is not None:
        on_start(proc.pid)
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ)
    pipe_open = True
    watched = _watch(proc.pid)
    try:
        while True:
            _sample_rss(watched, outcome)
            remaining = timeout_s - (time.monotonic() - start)
            if remaining <= 0:
                outcome.timed_out = True
                _terminate(proc)
                break
            if pipe_open and selector.select(timeout=min(TICK_S, remaining)):
                data = os.read(read_fd, 65536)
                if data:
                    reader.feed(data)
                else:
                    pipe_open = False
            elif not pipe_open:
                try:
                    proc.wait(timeout=min(TICK_S, remaining))
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is not None and not (pipe_open and selector.select(timeout=0)):
                break
    except BaseException:
        _terminate(proc)
        raise
    finally:
        selector.close()
        os.close(read_fd)
        # Helpers the worker started (compile pools) must not outlive it.
        kill_group(proc.pid, signal.SIGKILL)
    code = proc.wait()
    outcome.wall_s = time.monotonic() - start
    if code < 0:
        outcome.signal_name = signal.Signals(-code).name
    else:
        outcome.exit_code = code
    outcome.stderr_tail = tail_text(stderr_path)
    return outcome
