"""Sessions in lockstep, with one session joining mid-run.

B sessions stepped together are the frame loop at batch B (one tick = one batched frame: Mimi encode of
[B, 1, 1920] -> LMGen.step -> Mimi decode); a tick over the deadline is late for all its sessions.
What this module adds is a caller joining a running batch: moshi 0.2.13 resets one slot of every streaming
state (`reset_streaming(reset_mask)`: KV cache offsets, conv buffers, LMGen offsets) while the others keep
their state, and `set_exec_mask` lets only that slot advance through its warm-up steps. The join happens
inside the tick that admits the caller, as the reference servers step a persona prompt before the caller's
first frame, so its cost lands on every session of that tick: that is the admission cost recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from harness.worker.pipeline.frame_loop import FrameLoop
from harness.worker.pipeline.lmgen import USER_CODEBOOKS

# (loop, slot, steps) -> None. The default warms the slot up with `steps` LM steps on neutral tokens; a persona
# prefill (the serving issue's harness/worker/pipeline/prefill.py) replaces it with the prompt's own steps.
Prefill = Callable[[FrameLoop, int, int], None]


def warmup_prefill(loop: FrameLoop, slot: int, steps: int) -> None:
    """`steps` LM steps that advance only `slot` (exec mask); the compute of a step does not depend on the
    token values, so neutral tokens cost what a prompt's tokens cost."""
    batch = loop.batch_size
    only = torch.zeros(batch, dtype=torch.bool, device=loop.device)
    only[slot] = True
    tokens = torch.zeros((batch, USER_CODEBOOKS, 1), dtype=torch.long, device=loop.device)
    loop.lm_gen.set_exec_mask(only)
    try:
        for _ in range(steps):
            loop.lm_gen.step(tokens)
    finally:
        loop.lm_gen.set_exec_mask(torch.ones(batch, dtype=torch.bool, device=loop.device))


@dataclass
class JoinRecord:
    slot: int
    at_index: int  # frame index (warmup included) of the admitting tick
    warmup_steps: int
    reset_ms: float = 0.0
    prefill_ms: float = 0.0
    tick_ms: list[float] = field(default_factory=list)


class JoiningLoop(FrameLoop):
    """The frame loop, except that at frame `join_index` the last slot is reset and prefilled before the tick."""

    def __init__(self, *args: object, join_index: int, warmup_steps: int, prefill: Prefill = warmup_prefill,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if warmup_steps <= self.lm_gen.max_delay:
            # LMGen's reset zeroes its batch-wide step counter: until it passes the largest delay every slot's
            # step returns no tokens, so the join must step at least that far before the next tick.
            raise ValueError(f"a joining session needs at least {self.lm_gen.max_delay + 1} warm-up steps "
                             f"(moshi's largest delay is {self.lm_gen.max_delay}); got {warmup_steps}")
        self.join = JoinRecord(slot=self.batch_size - 1, at_index=join_index, warmup_steps=warmup_steps)
        self.prefill = prefill

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def frame(self, index: int) -> dict[str, float]:
        if index != self.join.at_index:
            return super().frame(index)
        join = self.join
        mask = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        mask[join.slot] = True
        self._sync()
        start = time.perf_counter()
        self.mimi.reset_streaming(mask)
        self.lm_gen.reset_streaming(mask)
        self._sync()
        reset = time.perf_counter()
        self.prefill(self, join.slot, join.warmup_steps)
        self._sync()
        done = time.perf_counter()
        join.reset_ms, join.prefill_ms = (reset - start) * 1e3, (done - reset) * 1e3
        times = super().frame(index)
        # The admitting tick is late for everyone by what the join took: its total includes it.
        times["total"] += join.reset_ms + join.prefill_ms
        join.tick_ms.append(times["total"])
        return times
