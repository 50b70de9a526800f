"""`python -m harness.fleet.supervise STATE_DIR -- COMMAND...`: run COMMAND and leave none of its processes behind.

Between a fleet task and its `harness run` on the node. `harness run` starts every worker in a session of its
own (so that it can kill the worker's group), which also means a worker outlives a `harness run` that is
killed. This process is a child subreaper: such orphans become its children, and it kills every one of them
once COMMAND has exited. It also receives SIGTERM when its parent (the Ray worker running the fleet task) dies,
and then kills the whole tree. Standard library and psutil only (no torch, no Ray).

STATE_DIR gets `pid` (COMMAND's pid, once started) and `exit.json` ({"exit_code": N} or {"signal": "SIGKILL"}).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Optional

import psutil

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except OSError:  # not Linux: no subreaper, the tree is still killed while COMMAND is alive
        return False


def kill_tree() -> None:
    """SIGKILL every descendant (orphans included: they were re-parented to this subreaper)."""
    for _ in range(3):  # a process may fork while we walk the tree
        children = psutil.Process().children(recursive=True)
        if not children:
            return
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(children, timeout=5)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m harness.fleet.supervise STATE_DIR -- COMMAND...", file=sys.stderr)
        return 2
    state = Path(argv[0])
    parent = os.getppid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        kill_tree()
        _write(state / "exit.json", json.dumps({"signal": signal.Signals(signum).name, "of": "supervisor"}))
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_signal)
    if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
        return 1
    proc = subprocess.Popen(argv[2:])
    _write(state / "pid", str(proc.pid))
    code = proc.wait()
    kill_tree()
    # Reap what was re-parented here and killed, so that nothing is left as a zombie either.
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
    outcome = {"signal": signal.Signals(-code).name} if code < 0 else {"exit_code": code}
    _write(state / "exit.json", json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
