"""Sessions in lockstep, with one session joining mid-run.

B sessions stepped together are the frame loop at batch B (one tick = one batched frame: Mimi encode of
[B, 1, 1920] -> LMGen.step -> Mimi decode); a tick over the deadline is late for all its sessions. Only a batching
server (vllm-omni's, say) runs sessions like this: NVIDIA's PersonaPlex server and PyPI moshi's both serve one call
per process behind a lock.

What this module adds is a caller joining a running batch: moshi 0.2.13 resets one slot of every streaming
state (`reset_streaming(reset_mask)`: KV cache offsets, conv buffers, LMGen offsets) while the others keep their
state, then that slot runs the persona prompt NVIDIA's server steps for every connection. Two ways:

- interleaved (the default; what a batching server does): the joiner's prompt is stepped inside the batch's
  ticks, one step per session per tick. Each tick is the batch's ordinary step, in which the joiner's slot carries
  its prompt (the sine as its user tokens, its text and agent tokens forced afterwards, prefill._forced_step) while
  the others stream their audio; the joiner's first live tick comes once its prompt is done. The ticks that carry
  the prompt are measured ticks like the others (nobody stalls); the joiner waits its prompt's steps in ticks (its
  handshake), recorded apart. moshi's LMGen keeps one batch-wide step counter, reset with any slot, under which a
  step returns no tokens for anyone: the join steps out of sync (`support_out_of_sync`), as a batching server must,
  and the joiner's not-yet-generated tokens are decoded as token 0 (its output is discarded until it is live).
- serial (a labelled worst case): the joining slot alone (`set_exec_mask`) runs the whole prompt before the next
  tick (prefill.run_prefill with `slot`: every prompt step after the server's 10 ms wait) or, with no persona, a
  few neutral warm-up steps. Each of those steps computes the whole batch, and the other sessions get no frame
  until the join is done: the join's time is their stall, recorded apart from the tick (`JoinRecord`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from harness.contract.wire import PersonaJob, PrefillSamples
from harness.worker.flavour import is_nvidia
from harness.worker.pipeline.frame_loop import FrameLoop
from harness.worker.pipeline.lmgen import USER_CODEBOOKS
from harness.worker.pipeline.prefill import (
    SILENCE_TOKENS,
    SINE_TOKENS,
    _forced_step,
    _plan,
    estimate_text_tokens,
    run_prefill,
)

JOIN_MODES = ("interleaved", "serial")

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


def prompt_steps(persona: PersonaJob, frame_rate: float = 12.5) -> int:
    """LM steps of the persona prompt, counted in the worker (the .wav's length, the tokenizer's tokens), as
    prefill._plan will step them: the ticks an interleaved join adds to the run."""
    voice = persona.voice_prompt_frames
    if persona.voice_prompt_wav:
        import wave

        with wave.open(persona.voice_prompt_wav, "rb") as handle:
            voice = math.ceil(handle.getnframes() / handle.getframerate() * frame_rate)
    text = persona.text_prompt_tokens
    if persona.text_prompt is not None and persona.tokenizer:
        import sentencepiece

        text = len(sentencepiece.SentencePieceProcessor(model_file=persona.tokenizer).encode(
            f"<system> {persona.text_prompt.strip()} <system>"))
    elif persona.text_prompt is not None:
        text = estimate_text_tokens(persona.text_prompt)
    return voice + 2 * persona.silence_frames + text


@dataclass
class JoinRecord:
    slot: int
    at_index: int  # frame index (warmup included) of the admitting tick
    warmup_steps: int
    reset_ms: float = 0.0
    prefill_ms: float = 0.0  # the whole join after the reset: prompt steps and the server's waits
    tick_ms: list[float] = field(default_factory=list)  # the admitting tick's own frame, the join not included
    persona: Optional[PrefillSamples] = None  # the persona prefill as it ran (None: neutral warm-up steps)
    mode: str = "serial"
    prompt_ticks: int = 0  # interleaved: ticks that carried the joiner's prompt (one step each)
    handshake_ms: float = 0.0  # interleaved: from the join to the joiner's first live tick (its wait)


class _PromptInTick:
    """Stands in for LMGen inside FrameLoop.frame while a joiner's prompt runs: the batch's one step, in which the
    joiner's slot takes its next prompt step (the sine as its user tokens, its text and agent tokens forced) and the
    others stream. Everything else is the real LMGen's."""

    def __init__(self, lm_gen: object, slot: int, steps: list[tuple[torch.Tensor, int]]) -> None:
        self._lm_gen, self._slot, self._steps = lm_gen, slot, steps
        self._next = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._lm_gen, name)

    @property
    def done(self) -> bool:
        return self._next >= len(self._steps)

    def step(self, codes: torch.Tensor) -> Optional[torch.Tensor]:
        agent, text = self._steps[self._next]
        self._next += 1
        batch = codes.shape[0]
        only = torch.zeros(batch, dtype=torch.bool, device=codes.device)
        only[self._slot] = True
        sine = torch.tensor(SINE_TOKENS, device=codes.device).view(1, 8, 1)
        user = codes.clone()
        user[self._slot, :8] = sine[0]
        out = _forced_step(self._lm_gen, user, agent, text, only)  # type: ignore[arg-type]
        if out is not None:  # the joiner's tokens not generated yet (negative ids): decoded as 0, discarded
            out = out.clamp(min=0)
        return out


class JoiningLoop(FrameLoop):
    """The frame loop, except that at frame `join_index` the last slot is reset and joins: serial (its prompt
    stepped alone before the tick, the others stalled: reset + prefill timed apart from the tick) or interleaved
    (its prompt stepped inside the following ticks, one step per tick, while the others stream)."""

    def __init__(self, *args: object, join_index: int, warmup_steps: int, prefill: Prefill = warmup_prefill,
                 mode: str = "serial", persona: Optional[PersonaJob] = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if mode not in JOIN_MODES:
            raise ValueError(f"join mode {mode!r}: one of {', '.join(JOIN_MODES)}")
        if mode == "serial" and prefill is warmup_prefill and warmup_steps <= self.lm_gen.max_delay:
            # LMGen's reset zeroes its batch-wide step counter: until it passes the largest delay every slot's
            # step returns no tokens, so the join must step at least that far before the next tick.
            raise ValueError(f"a joining session needs at least {self.lm_gen.max_delay + 1} warm-up steps "
                             f"(moshi's largest delay is {self.lm_gen.max_delay}); got {warmup_steps}")
        if mode == "interleaved" and is_nvidia():
            raise ValueError("NVIDIA's fork steps persona prompts for one call at a time: no slot of a batch joins")
        self.join = JoinRecord(slot=self.batch_size - 1, at_index=join_index, warmup_steps=warmup_steps, mode=mode)
        self.prefill = prefill
        self.persona, self.seed = persona, int(kwargs["seed"])  # type: ignore[call-overload]  # the run's seed
        self._stepper: Optional[_PromptInTick] = None
        self._lm_gen_itself = self.lm_gen
        self._joined_at = 0.0

    def captured_graphs(self) -> int:
        saved, self.lm_gen = self.lm_gen, self._lm_gen_itself  # never the stand-in of a prompt tick
        try:
            return super().captured_graphs()
        finally:
            self.lm_gen = saved

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _reset_slot(self) -> torch.Tensor:
        mask = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        mask[self.join.slot] = True
        self.mimi.reset_streaming(mask)
        self.lm_gen.reset_streaming(mask)
        if self.server is not None and self.server.other_mimi is not None:  # PersonaPlex's second Mimi too
            self.server.other_mimi.reset_streaming(mask)
        return mask

    def frame(self, index: int) -> dict[str, float]:
        if self.join.mode == "interleaved":
            return self._interleaved(index)
        if index != self.join.at_index:
            return super().frame(index)
        join = self.join
        self._sync()
        start = time.perf_counter()
        self._reset_slot()
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

    def _schedule(self) -> tuple[list[tuple[torch.Tensor, int]], Optional[PrefillSamples]]:
        """The joiner's prompt steps, as prefill._step_prompt orders them: (agent tokens, text token) per step."""
        batch, device = self.batch_size, self.device
        if self.persona is None:  # neutral steps: the compute of a step does not depend on the token values
            zeros = torch.zeros((batch, 8, 1), dtype=torch.long, device=device)
            pad = int(self._lm_gen_itself.lm_model.text_padding_token_id)
            return [(zeros, pad)] * self.join.warmup_steps, None
        job = self.persona
        only = torch.zeros(batch, dtype=torch.bool, device=device)
        only[self.join.slot] = True
        plan = _plan(job, self.mimi, self._lm_gen_itself, batch, device, self.seed, only)
        silence = torch.tensor(SILENCE_TOKENS, device=device).view(1, 8, 1).expand(batch, 8, 1).contiguous()
        pad = int(self._lm_gen_itself.lm_model.text_padding_token_id)
        steps = [(v, pad) for v in plan.voice] + [(silence, pad)] * job.silence_frames
        steps += [(silence, token) for token in plan.text] + [(silence, pad)] * job.silence_frames
        samples = PrefillSamples(voice_steps=len(plan.voice), silence_steps=2 * job.silence_frames,
                                 text_steps=len(plan.text), step_ms=[], seconds=0.0, wait_s=0.0,
                                 voice_encode_ms=plan.voice_encode_ms, text_tokens_estimated=plan.estimated,
                                 context_capacity=int(getattr(self._lm_gen_itself.lm_model, "context", 0) or 0))
        return steps, samples

    def _interleaved(self, index: int) -> dict[str, float]:
        join = self.join
        if index == join.at_index:
            self._sync()
            start = time.perf_counter()
            self._joined_at = start
            self._reset_slot()
            steps, join.persona = self._schedule()  # a .wav voice prompt is encoded here, its slot alone
            join.warmup_steps = len(steps)
            # moshi's batch-wide step counter restarts with the slot: step out of sync so the others keep their
            # tokens (their own offsets are untouched), as a batching server must
            self._lm_gen_itself.support_out_of_sync = True
            self._stepper = _PromptInTick(self._lm_gen_itself, join.slot, steps)
            self.lm_gen = self._stepper  # type: ignore[assignment]
            self._sync()
            join.reset_ms = (time.perf_counter() - start) * 1e3
        times = super().frame(index)
        stepper = self._stepper
        if stepper is None:
            return times
        join.tick_ms.append(times["total"])
        join.prompt_ticks += 1
        if stepper.done:  # the joiner is live from the next tick: its audio state starts with its conversation
            self.lm_gen = self._lm_gen_itself
            self._stepper = None
            mask = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
            mask[join.slot] = True
            self.mimi.reset_streaming(mask)
            if self.server is not None and self.server.other_mimi is not None:
                self.server.other_mimi.reset_streaming(mask)
            self._sync()
            join.handshake_ms = (time.perf_counter() - self._joined_at) * 1e3
            if join.persona is not None:
                join.persona.step_ms = list(join.tick_ms)
                join.persona.seconds = join.handshake_ms / 1e3
        return times
