"""The session's wall-clock cap (`--time-limit`): how much is left, and the line a run that may not start gets."""

from __future__ import annotations

import time
from typing import Optional


class SessionClock:
    def __init__(self, limit_s: Optional[float]) -> None:
        self.limit_s = limit_s
        self._deadline: Optional[float] = None  # time.monotonic() at which the limit runs out
        self.started: Optional[float] = None

    def start(self) -> None:
        self.started = time.monotonic()
        if self.limit_s is not None:
            self._deadline = self.started + self.limit_s

    def left(self) -> Optional[float]:
        """Seconds left under --time-limit (None: no limit)."""
        return None if self._deadline is None else self._deadline - time.monotonic()

    def out_of_time(self) -> Optional[str]:
        """Why nothing more may start, or None while there is time."""
        left = self.left()
        if left is None or left > 0:
            return None
        return f"not started: the session's --time-limit of {self.limit_s:g} s was reached"

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started
