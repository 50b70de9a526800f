"""What both prefills share: the record of one prompt step and the timer of the steps.

prefill.py (PyPI moshi's emulation) and nvidia_prefill.py (NVIDIA's fork's own prompt stepping) both time their
steps with StepTimer and report PromptStep traces; they live here, below both, so neither prefill imports the other
for them (prefill.py picks nvidia_prefill.run_nvidia_prefill when the fork is installed).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import torch


@dataclass
class PromptStep:
    """One prompt step as the LM was given it, for checking the emulation against NVIDIA's fork step by step."""

    phase: str  # voice | silence | text
    text: int  # the text token forced
    agent: Optional[list[int]]  # the agent's 8 tokens forced; None when a voice embedding is replayed instead
    user: list[int]  # the user's 8 tokens (the sine)
    computed: bool  # the LM ran (NVIDIA's very first step after a reset only fills its cache)
    ms: float = 0.0


class StepTimer:
    """Times each prefill step without adding synchronisations a server does not make.

    NVIDIA's prefill never waits for the GPU between steps (its sampling avoids host syncs), so its kernels run
    while the server awaits its 10 ms liveness checks. On CUDA each step is therefore bracketed by CUDA events on
    the stream and the device is synchronised once, at the end (`finish`): the step times are GPU times and the
    prefill's wall time includes the overlap. On a CPU the step is its wall time."""

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._ms: list[float] = []
        self._events: list[tuple["torch.cuda.Event", "torch.cuda.Event"]] = []

    @contextmanager
    def step(self) -> Iterator[None]:
        if self._cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.append((start, end))
        else:
            begun = time.perf_counter()
            yield
            self._ms.append((time.perf_counter() - begun) * 1e3)

    def finish(self) -> list[float]:
        if self._cuda:
            torch.cuda.synchronize()
            return [start.elapsed_time(end) for start, end in self._events]
        return self._ms
