"""The persona prefill run by NVIDIA's fork itself: its `LMGen.step_system_prompts_async`, driven as its server
drives it (github NVIDIA/personaplex `moshi/moshi/server.py`, handle_chat): text prompt tokens set on the LMGen, the
voice prompt loaded, a liveness check awaited before every step (the server waits up to 10 ms for a message), and
Mimi reset afterwards.

Nothing of the fork is re-implemented here: its own generators step the prompt. To time and count the steps the
LMGen instance's `step` and `step_embeddings` are observed (wrapped on the instance, the class untouched), and so is
Mimi's `encode` while a .wav voice prompt is encoded between steps.

Voice prompts: NVIDIA's voices are `.pt` files of saved embeddings plus the token cache after them, replayed with
`step_embeddings`. Without a voice file (`voice_prompt_frames`) synthetic embeddings of the model's width stand in,
set where `load_voice_prompt_embeddings` puts what it reads; with a .wav, `load_voice_prompt` reads it (it needs
sphn and pyloudnorm, as the server does).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from moshi.models.compression import MimiModel
from moshi.models.lm import LMGen

from harness.contract.wire import PersonaJob, PrefillSamples
from harness.worker.pipeline.prompt_steps import PromptStep, StepTimer


@dataclass
class _Observer:
    """Counts and times the fork's prompt steps from the outside."""

    timer: StepTimer  # the prompt's LM steps
    encodes: StepTimer  # Mimi encodes of a .wav voice prompt, between the steps
    steps: list[PromptStep] = field(default_factory=list)

    def wrap_step(self, lm_gen: LMGen) -> Callable[..., Any]:
        original = lm_gen.step

        def step(input_tokens: Any = None, moshi_tokens: Any = None, text_token: Any = None, **kwargs: Any) -> Any:
            computed = lm_gen._streaming_state.offset > 0  # at offset 0 the fork only fills its cache
            with self.timer.step():
                out = original(input_tokens, moshi_tokens, text_token, **kwargs)
            voice = "return_embeddings" in kwargs
            self.steps.append(PromptStep(phase="voice" if voice else "", text=int(text_token),
                                         agent=_tokens(moshi_tokens), user=_tokens(input_tokens) or [],
                                         computed=computed))
            return out

        return step

    def wrap_embeddings(self, lm_gen: LMGen) -> Callable[..., Any]:
        original = lm_gen.step_embeddings

        def step_embeddings(embeddings: torch.Tensor) -> Any:
            with self.timer.step():
                out = original(embeddings)
            self.steps.append(PromptStep(phase="voice", text=int(lm_gen.zero_text_code), agent=None,
                                         user=_tokens(lm_gen.lm_model._get_initial_token()[:, 1:9]) or [],
                                         computed=True))
            return out

        return step_embeddings

    def wrap_encode(self, mimi: MimiModel) -> Callable[..., Any]:
        original = mimi.encode

        def encode(x: torch.Tensor) -> torch.Tensor:
            with self.encodes.step():
                return original(x)

        return encode


def _tokens(tokens: Any) -> Optional[list[int]]:
    if tokens is None:
        return None
    return [int(t) for t in torch.as_tensor(tokens).reshape(-1).tolist()]


def _synthetic_voice(lm_gen: LMGen, frames: int, seed: int) -> None:
    """What `load_voice_prompt_embeddings` sets from a voice .pt: one embedding per voice frame ([1, 1, dim] each,
    as `embed_codes` made them) and the token cache after them; synthetic values of the real shapes."""
    lm = lm_gen.lm_model
    generator = torch.Generator().manual_seed(seed + 7)
    embeddings = torch.randn(frames, 1, 1, lm.dim, generator=generator) * lm.dim ** -0.5
    cache = torch.randint(0, lm.card, (1, lm.num_codebooks, lm_gen.max_delay + 3), generator=generator)
    cache[:, 0] = lm_gen.zero_text_code
    lm_gen.voice_prompt = f"synthetic voice ({frames} frames)"
    lm_gen.voice_prompt_audio = None
    lm_gen.voice_prompt_embeddings = embeddings.to(lm.device, lm.text_emb.weight.dtype)
    lm_gen.voice_prompt_cache = cache.to(lm.device)


def _label_phases(steps: list[PromptStep], silence: int, text: int) -> None:
    """After the voice steps come `silence` silence steps, the text prompt's steps, `silence` again."""
    rest = [s for s in steps if s.phase != "voice"]
    for i, step in enumerate(rest):
        step.phase = "text" if silence <= i < silence + text else "silence"


def run_nvidia_prefill(job: PersonaJob, mimi: MimiModel, lm_gen: LMGen, device: torch.device, batch: int,
                       seed: int, text_tokens: list[int], text_estimated: bool,
                       trace: Optional[list[PromptStep]] = None) -> PrefillSamples:
    """Step the persona prompt with the fork's own code, right after a reset, as its server does per call."""
    if batch != 1:
        raise ValueError(f"NVIDIA's fork steps persona prompts for one call at a time (batch 1), not {batch}")
    if job.voice_prompt_wav:
        lm_gen.load_voice_prompt(job.voice_prompt_wav)  # per call only when the voice changes: not timed
    else:
        _synthetic_voice(lm_gen, job.voice_prompt_frames, seed)
    lm_gen.text_prompt_tokens = list(text_tokens)
    lm_gen.audio_silence_frame_cnt = job.silence_frames
    observer = _Observer(timer=StepTimer(device), encodes=StepTimer(device))
    waited = 0.0

    async def is_alive() -> bool:  # the server's check before each step: a receive with a 10 ms timeout
        nonlocal waited
        if job.server_wait_ms > 0:
            pause = time.perf_counter()
            await asyncio.sleep(job.server_wait_ms / 1e3)
            waited += time.perf_counter() - pause
        return True

    lm_gen.step = observer.wrap_step(lm_gen)  # type: ignore[method-assign]
    lm_gen.step_embeddings = observer.wrap_embeddings(lm_gen)  # type: ignore[method-assign]
    mimi.encode = observer.wrap_encode(mimi)  # type: ignore[method-assign]
    begun = time.perf_counter()
    try:
        asyncio.run(lm_gen.step_system_prompts_async(mimi, is_alive=is_alive))
        times = observer.timer.finish()  # on CUDA the prefill's one synchronisation
        encode_ms = sum(observer.encodes.finish())
        seconds = time.perf_counter() - begun
    finally:
        for name in ("step", "step_embeddings"):
            vars(lm_gen).pop(name, None)
        vars(mimi).pop("encode", None)
    mimi.reset_streaming()  # as the server does before the conversation
    for step, ms in zip(observer.steps, times):
        step.ms = ms
    _label_phases(observer.steps, job.silence_frames, len(text_tokens))
    if trace is not None:
        trace.extend(observer.steps)
    count = {p: sum(1 for s in observer.steps if s.phase == p) for p in ("voice", "silence", "text")}
    context = getattr(lm_gen.lm_model, "context", None) or 0
    return PrefillSamples(voice_steps=count["voice"], silence_steps=count["silence"], text_steps=count["text"],
                          step_ms=times, seconds=seconds - encode_ms / 1e3, wait_s=waited,
                          voice_encode_ms=encode_ms, text_tokens_estimated=text_estimated,
                          context_capacity=int(context))
