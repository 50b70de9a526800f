"""The persona prefill a PersonaPlex server runs for every connection, before the first user frame.

NVIDIA's `LMGen.step_system_prompts` (github NVIDIA/personaplex, `moshi/moshi/models/lm.py`) steps the LM once per
voice-prompt frame (agent audio forced to the voice's tokens, or replayed embeddings from a `.pt` file), then
`int(0.5 s x 12.5 Hz) = 6` silence frames, one step per SentencePiece token of the text prompt (wrapped in
`<system>` tags), then 6 silence frames again; the user stream carries a fixed sine during all of it, and the server
awaits a 10 ms liveness check before each step. Each of those steps runs the temporal transformer and the
depformer (its forced tokens replace the depformer's samples afterwards, they do not skip it).

With NVIDIA's fork installed (a `python:` environment of the user's) the fork's own prompt stepping runs instead
(nvidia_prefill.py). With PyPI moshi (whose LMGen has no prompt stepping) the harness emulates that compute: a full
`LMGen.step` with the sine as the user's tokens, then the forced text and agent tokens written into the token
cache where the step wrote its samples. Only the compute and the context it uses up are claimed, not the voice.
tests/test_nvidia_fork.py checks the emulation against the fork step by step.

On CUDA neither waits for the GPU between steps (StepTimer, in prompt_steps.py with PromptStep: both prefills use
them): NVIDIA's sampling avoids host syncs on purpose, so its kernels run during the 10 ms liveness waits, and an
emulation that synchronised every step would overstate the prefill by up to the GPU time of all its steps.
"""

from __future__ import annotations

import math
import time
import wave
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from moshi.models.compression import MimiModel
from moshi.models.lm import LMGen

from harness.contract.wire import PersonaJob, PrefillSamples
from harness.worker.flavour import is_nvidia
from harness.worker.pipeline.nvidia_prefill import run_nvidia_prefill
from harness.worker.pipeline.prompt_steps import PromptStep, StepTimer

# Mimi tokens of silence and of the sine the user stream carries during the prompt (NVIDIA's SILENCE_TOKENS /
# SINE_TOKENS: data of the released model, 8 codebooks each).
SILENCE_TOKENS = (948, 243, 1178, 546, 1736, 1030, 1978, 2008)
SINE_TOKENS = (430, 1268, 381, 1611, 1095, 1495, 56, 472)
AGENT_ROWS = slice(1, 9)
# A text prompt counted without its tokenizer: about 1.3 SentencePiece tokens per English word, plus the tags.
TOKENS_PER_WORD = 1.3
SYSTEM_TAG_TOKENS = 6


def estimate_text_tokens(text: str) -> int:
    return SYSTEM_TAG_TOKENS + math.ceil(TOKENS_PER_WORD * len(text.split()))


@dataclass
class _Plan:
    voice: list[torch.Tensor] = field(default_factory=list)  # [B, 8, 1] agent tokens per voice frame
    voice_encode_ms: float = 0.0
    text: list[int] = field(default_factory=list)
    estimated: bool = False


def _read_wav(path: str, sample_rate: int) -> torch.Tensor:
    """Mono float32 at the model's rate from a 16-bit PCM WAV (standard library; resampled linearly if needed)."""
    with wave.open(path, "rb") as handle:
        rate, channels, width = handle.getframerate(), handle.getnchannels(), handle.getsampwidth()
        raw = handle.readframes(handle.getnframes())
    if width != 2:
        raise ValueError(f"voice prompt {path}: only 16-bit PCM WAV is read here (sample width {width} bytes)")
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.float32).reshape(-1, channels).mean(axis=1) / 32768.0
    if rate != sample_rate:
        target = np.linspace(0, len(pcm) - 1, int(len(pcm) * sample_rate / rate))
        pcm = np.interp(target, np.arange(len(pcm)), pcm).astype(np.float32)
    return torch.from_numpy(pcm)


def _text_tokens(job: PersonaJob, text_card: int, seed: int) -> tuple[list[int], bool]:
    if job.text_prompt is not None and job.tokenizer:
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=job.tokenizer)
        return list(processor.encode(f"<system> {job.text_prompt.strip()} <system>")), False
    count = job.text_prompt_tokens
    estimated = False
    if job.text_prompt is not None:
        count, estimated = estimate_text_tokens(job.text_prompt), True
    generator = torch.Generator().manual_seed(seed)
    # Synthetic weights: any in-vocabulary ids cost the same as the real prompt's.
    return torch.randint(4, text_card, (count,), generator=generator).tolist(), estimated


def _plan(job: PersonaJob, mimi: MimiModel, lm_gen: LMGen, batch: int, device: torch.device, seed: int,
          only: Optional[torch.Tensor] = None) -> _Plan:
    plan = _Plan()
    if job.voice_prompt_wav:
        audio = _read_wav(job.voice_prompt_wav, int(mimi.sample_rate)).to(device)
        frame = int(mimi.sample_rate / mimi.frame_rate)
        frames = math.ceil(audio.shape[-1] / frame)
        audio = torch.nn.functional.pad(audio, (0, frames * frame - audio.shape[-1]))
        begun = time.perf_counter()
        # As the server does: the conversation's Mimi (already streaming) encodes the prompt; reset afterwards.
        # A caller joining a batch (`only`): only its slot encodes and is reset; the others keep their state.
        if only is not None:
            mimi.set_exec_mask(only)
        for i in range(frames):
            chunk = audio[i * frame:(i + 1) * frame].expand(batch, 1, frame)
            plan.voice.append(mimi.encode(chunk)[:, :8])
        if only is not None:
            mimi.set_exec_mask(torch.ones_like(only))
            mimi.reset_streaming(only)
        else:
            mimi.reset_streaming()
        if device.type == "cuda":
            torch.cuda.synchronize()
        plan.voice_encode_ms = (time.perf_counter() - begun) * 1e3
    else:
        generator = torch.Generator().manual_seed(seed + 7)
        card = lm_gen.lm_model.card
        plan.voice = [torch.randint(0, card, (batch, 8, 1), generator=generator).to(device)
                      for _ in range(job.voice_prompt_frames)]
    plan.text, plan.estimated = _text_tokens(job, lm_gen.lm_model.text_card, seed)
    return plan


def _forced_step(lm_gen: LMGen, user: torch.Tensor, agent: torch.Tensor, text: int,
                 only: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """One prompt step: the whole LM step (transformer and depformer), then the prompt's own text and agent
    tokens where the step wrote its samples (only in the slots of `only`, when a caller joins a batch). Returns
    the step's output tokens (the other slots' audio when the prompt is stepped inside a batch's tick)."""
    out = lm_gen.step(user)
    state = lm_gen._streaming_state
    cache = state.cache
    position = (state.offsets % cache.shape[2])[:, None, None]
    text_rows = torch.full_like(position, text)
    agent_rows = agent
    if only is not None:  # the other slots did not step: leave what their last step wrote
        text_rows = torch.where(only[:, None, None], text_rows, cache[:, :1].gather(2, position))
        agent_rows = torch.where(only[:, None, None], agent,
                                 cache[:, AGENT_ROWS].gather(2, position.expand(-1, 8, -1)))
    cache[:, :1].scatter_(2, position, text_rows)
    cache[:, AGENT_ROWS].scatter_(2, position.expand(-1, 8, -1), agent_rows)
    return out


def run_prefill(job: PersonaJob, mimi: MimiModel, lm_gen: LMGen, device: torch.device, batch: int, seed: int,
                on_step: Optional[Callable[[int, int], None]] = None, slot: Optional[int] = None,
                trace: Optional[list[PromptStep]] = None) -> PrefillSamples:
    """Step the persona prompt; call with `lm_gen` and `mimi` streaming, right after a reset, as a server does for
    every connection. With `slot` only that slot of a running batch steps (moshi's exec mask; a caller joining a
    lockstep batch): the whole batch's step is computed, the other slots keep their state. With NVIDIA's fork
    installed its own `step_system_prompts` runs (nvidia_prefill.py; one call at a time, no slots)."""
    if is_nvidia():
        if slot is not None:
            raise ValueError("NVIDIA's fork steps persona prompts for one call at a time: no slot of a batch joins")
        tokens, estimated = _text_tokens(job, lm_gen.lm_model.text_card, seed)
        return run_nvidia_prefill(job, mimi, lm_gen, device, batch, seed, tokens, estimated, trace)
    only = None
    if slot is not None:
        only = torch.zeros(batch, dtype=torch.bool, device=device)
        only[slot] = True
    plan = _plan(job, mimi, lm_gen, batch, device, seed, only)
    if only is not None:
        lm_gen.set_exec_mask(only)
    try:
        return _step_prompt(job, plan, lm_gen, device, batch, on_step, only, trace)
    finally:
        if only is not None:
            lm_gen.set_exec_mask(torch.ones_like(only))


def _step_prompt(job: PersonaJob, plan: _Plan, lm_gen: LMGen, device: torch.device, batch: int,
                 on_step: Optional[Callable[[int, int], None]], only: Optional[torch.Tensor],
                 trace: Optional[list[PromptStep]] = None) -> PrefillSamples:
    lm = lm_gen.lm_model
    sine = torch.tensor(SINE_TOKENS, device=device).view(1, 8, 1).expand(batch, 8, 1).contiguous()
    silence = torch.tensor(SILENCE_TOKENS, device=device).view(1, 8, 1).expand(batch, 8, 1).contiguous()
    pad = int(lm.text_padding_token_id)
    steps: list[tuple[torch.Tensor, int]] = [(v, pad) for v in plan.voice]
    steps += [(silence, pad)] * job.silence_frames
    steps += [(silence, token) for token in plan.text]
    steps += [(silence, pad)] * job.silence_frames
    phases = (["voice"] * len(plan.voice) + ["silence"] * job.silence_frames + ["text"] * len(plan.text)
              + ["silence"] * job.silence_frames)
    timer = StepTimer(device)
    waited = 0.0
    begun = time.perf_counter()
    for index, (agent, text) in enumerate(steps):
        if job.server_wait_ms > 0:
            pause = time.perf_counter()
            time.sleep(job.server_wait_ms / 1e3)
            waited += time.perf_counter() - pause
        with timer.step():
            _forced_step(lm_gen, sine, agent, text, only)
        if on_step is not None:
            on_step(index, len(steps))
    times = timer.finish()  # on CUDA the prefill's one synchronisation
    if trace is not None:
        user = list(SINE_TOKENS)
        trace.extend(PromptStep(phase=phase, text=text, agent=[int(t) for t in agent[0, :, 0].tolist()], user=user,
                                computed=True, ms=ms) for phase, (agent, text), ms in zip(phases, steps, times))
    context = getattr(lm, "context", None) or 0  # LMModel keeps the temporal context it was built with
    return PrefillSamples(voice_steps=len(plan.voice), silence_steps=2 * job.silence_frames, text_steps=len(plan.text),
                          step_ms=times, seconds=time.perf_counter() - begun, wait_s=waited,
                          voice_encode_ms=plan.voice_encode_ms, text_tokens_estimated=plan.estimated,
                          context_capacity=int(context))
