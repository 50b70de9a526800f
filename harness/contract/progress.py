"""The worker's end of the progress pipe: JSON lines, best effort (a closed pipe never fails a run)."""

from __future__ import annotations

import os
from typing import Optional

from harness.contract.wire import ProgressEvent, to_json

PROGRESS_FD_ENV = "HARNESS_PROGRESS_FD"


class ProgressPipe:
    def __init__(self, fd: Optional[int]) -> None:
        self._fd = fd

    @classmethod
    def from_env(cls) -> "ProgressPipe":
        value = os.environ.get(PROGRESS_FD_ENV)
        return cls(int(value) if value and value.isdigit() else None)

    def _send(self, event: ProgressEvent) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, (to_json(event) + "\n").encode())
        except OSError:
            self._fd = None  # parent gone or pipe closed: keep measuring, stop reporting

    def phase(self, name: str) -> None:
        self._send(ProgressEvent(event="phase", phase=name))

    def frame(self, index: int, total: int, warmup: bool, ms: float) -> None:
        self._send(ProgressEvent(event="frame", index=index, total=total, warmup=warmup, ms=ms))
