"""Sessions in lockstep, with one session joining mid-run.

B sessions stepped together are the frame loop at batch B (one tick = one batched frame: Mimi encode of
[B, 1, 1920] -> LMGen.step -> Mimi decode); a tick over the deadline is late for all its sessions. Only a batching
server (vllm-omni's, say) runs sessions like this: NVIDIA's PersonaPlex server and PyPI moshi's both serve one call
per process behind a lock.

What this module adds is a caller joining a running batch: moshi 0.2.13 resets one slot of every streaming
state (`reset_streaming(reset_mask)`: KV cache offsets, conv buffers, LMGen offsets) while the others keep
their state, then that slot alone (`set_exec_mask`) runs the persona prefill as NVIDIA's server steps it for
every connection (prefill.run_prefill with `slot`: every prompt step after the server's 10 ms wait), or, with no
persona, a few neutral warm-up steps. Each of those steps computes the whole batch, and the other sessions get no
frame until the join is done: the join's time is their stall, recorded apart from the tick (`JoinRecord`), so that
the ticks measure the batch between joins and the stall is reported as what admitting a caller costs the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from harness.contract.wire import PersonaJob, PrefillSamples
from harness.worker.pipeline.frame_loop import FrameLoop
from harness.worker.pipeline.lmgen import USER_CODEBOOKS
from harness.worker.pipeline.prefill import run_prefill

# (loop, slot, steps) -> the persona prefill's samples, or None for plain warm-up steps. The default warms the
# slot up with `steps` LM steps on neutral tokens; `persona_prefill` runs the server's own prompt steps.
Prefill = Callable[[FrameLoop, int, int], Optional[PrefillSamples]]


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


def persona_prefill(persona: PersonaJob, seed: int) -> Prefill:
    """The joining slot runs the persona prompt as NVIDIA's server steps it for a new connection (the same
    function as every call's prefill, restricted to the slot); `steps` is then the prompt's own count."""

    def prefill(loop: FrameLoop, slot: int, steps: int) -> PrefillSamples:
        return run_prefill(persona, loop.mimi, loop.lm_gen, loop.device, loop.batch_size, seed, slot=slot)

    return prefill


def persona_steps(persona: PersonaJob) -> Optional[int]:
    """LM steps of the persona prompt, when known before running (a .wav or a tokenizer decide in the run)."""
    if persona.voice_prompt_wav or (persona.text_prompt and persona.tokenizer):
        return None
    return persona.voice_prompt_frames + 2 * persona.silence_frames + persona.text_prompt_tokens


@dataclass
class JoinRecord:
    slot: int
    at_index: int  # frame index (warmup included) of the admitting tick
    warmup_steps: int
    reset_ms: float = 0.0
    prefill_ms: float = 0.0  # the whole join after the reset: prompt steps and the server's waits
    tick_ms: list[float] = field(default_factory=list)  # the admitting tick's own frame, the join not included
    persona: Optional[PrefillSamples] = None  # the persona prefill as it ran (None: neutral warm-up steps)


class JoiningLoop(FrameLoop):
    """The frame loop, except that at frame `join_index` the last slot is reset and prefilled before the tick.

    The join (reset + prefill) is timed on its own and not added to the tick: it is the other sessions' stall,
    reported as such (AdmissionSample.stall_ms), while the ticks stay the batch's steady frames."""

    def __init__(self, *args: object, join_index: int, warmup_steps: int, prefill: Prefill = warmup_prefill,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if prefill is warmup_prefill and warmup_steps <= self.lm_gen.max_delay:
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
        if self.server is not None:  # PersonaPlex's server frame: its second Mimi restarts with the call too
            self.server.other_mimi.reset_streaming(mask)
        self._sync()
        reset = time.perf_counter()
        join.persona = self.prefill(self, join.slot, join.warmup_steps)
        self._sync()
        done = time.perf_counter()
        join.reset_ms, join.prefill_ms = (reset - start) * 1e3, (done - reset) * 1e3
        if join.persona is not None:
            join.warmup_steps = len(join.persona.step_ms)
            if join.warmup_steps <= self.lm_gen.max_delay:  # a prompt too short to produce tokens: top it up
                warmup_prefill(self, join.slot, self.lm_gen.max_delay + 1 - join.warmup_steps)
                join.warmup_steps = self.lm_gen.max_delay + 1
                self._sync()
                done = time.perf_counter()
                join.prefill_ms = (done - reset) * 1e3
        times = super().frame(index)
        join.tick_ms.append(times["total"])
        return times
