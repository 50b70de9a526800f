"""Start a server process, wait until it listens on 127.0.0.1, stop it with everything it started.

The server runs in its own session (process group), with its output in a log file. Waiting polls the process and a
TCP connect to the port twice a second (no busy wait). Stopping sends SIGTERM to the group, then SIGKILL after a
grace period, and finally kills any descendant that left the group (psutil), so that no process is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import psutil

from harness.launcher.spawn import tail_text as _tail_text

POLL_S = 0.5
TERM_GRACE_S = 5.0
LOOPBACK = "127.0.0.1"
LINE_CHARS = 300  # a log line longer than this is cut (state-dict errors list hundreds of keys on one line)


def tail_text(path: Path, max_lines: int = 12) -> str:
    lines = _tail_text(path, max_lines=max_lines).splitlines()
    return "\n".join(line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + " ..." for line in lines)


class ServerStartError(RuntimeError):
    """The server exited or never listened: the message says which, with its last log lines."""


@dataclass
class RunningServer:
    process: subprocess.Popen
    port: int
    log: Path
    command: list[str]
    started_s: float = field(default_factory=time.monotonic)
    ready_s: Optional[float] = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def listening(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_server(command: list[str], env: dict[str, str], port: int, log: Path, ready_timeout_s: float,
                 host: str = LOOPBACK) -> RunningServer:
    """Start `command`; return once `host:port` accepts connections. Raises ServerStartError (after stopping it)."""
    if listening(port, host):  # something else answers there: readiness could not be told apart from it
        raise ServerStartError(f"port {port} on {host} is already in use; choose another (--port)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    server = RunningServer(process=process, port=port, log=log, command=command)
    deadline = time.monotonic() + ready_timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise ServerStartError(f"the server exited with status {process.returncode} before listening on "
                                       f"{host}:{port}; last lines of {log}:\n{tail_text(log, max_lines=12)}")
            if listening(port, host):
                server.ready_s = time.monotonic()
                return server
            if time.monotonic() > deadline:
                raise ServerStartError(f"the server did not listen on {host}:{port} within {ready_timeout_s:.0f} s; "
                                       f"last lines of {log}:\n{tail_text(log, max_lines=12)}")
            time.sleep(POLL_S)
    except BaseException:
        stop_server(server)
        raise


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_server(server: RunningServer) -> None:
    """SIGTERM to the server's group, SIGKILL after the grace period; then any descendant still alive."""
    stragglers = _descendants(server.pid)
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, TERM_GRACE_S)):
        try:
            os.killpg(server.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            server.process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(server.pid, signal.SIGKILL)  # helpers left in the group after the leader exited
    except (ProcessLookupError, PermissionError):
        pass
    for child in stragglers:
        try:
            child.kill()
        except psutil.Error:
            pass
    if server.process.poll() is None:
        server.process.wait()


def run_step(command: list[str], env: dict[str, str], log: Path, timeout_s: float) -> Optional[str]:
    """Run a preparation step to completion in its own session; None when it succeeded, else why not."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return f"timed out after {timeout_s:.0f} s"
    except BaseException:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        raise
    if code != 0:
        return f"exit status {code}; last lines of {log}:\n{tail_text(log, max_lines=12)}"
    return None
