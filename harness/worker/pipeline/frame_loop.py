"""The full-duplex frame loop: Mimi encode -> LMGen.step -> Mimi decode, one 80 ms frame per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from moshi.models.compression import MimiModel
from moshi.models.lm import LMGen

from harness.worker.pipeline.audio import speech_like
from harness.worker.pipeline.clock import StageClock

AGENT_CODEBOOKS = 8  # the agent's own audio stream: cache rows 1..8, what Mimi decodes
STAGES = ("encode", "lm_step", "decode")

FrameCallback = Callable[[int, int, bool, float], None]  # index, total, is_warmup, frame ms


class NoTokensError(RuntimeError):
    pass


@dataclass
class FrameLoopResult:
    total_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    event_ms: dict[str, list[float]] = field(default_factory=dict)
    first_step_s: float = 0.0
    warmup_s: float = 0.0


def run_frame_loop(
    mimi: MimiModel,
    lm_gen: LMGen,
    device: torch.device,
    *,
    frames: int,
    warmup_frames: int,
    batch_size: int,
    seed: int,
    on_frame: FrameCallback | None = None,
) -> FrameLoopResult:
    audio = speech_like(mimi.sample_rate, batch_size, seed).to(device)
    frame_size = int(mimi.sample_rate / mimi.frame_rate)
    chunks_in_loop = audio.shape[-1] // frame_size
    clock = StageClock(device)
    result = FrameLoopResult()
    total = warmup_frames + frames
    with torch.no_grad(), mimi.streaming(batch_size), lm_gen.streaming(batch_size):
        for index in range(total):
            start = (index % chunks_in_loop) * frame_size
            chunk = audio[:, :, start:start + frame_size]
            clock.start()
            codes = mimi.encode(chunk)
            clock.mark("encode")
            tokens = lm_gen.step(codes)
            clock.mark("lm_step")
            if tokens is not None:
                mimi.decode(tokens[:, 1:1 + AGENT_CODEBOOKS])
            elif index >= warmup_frames:
                raise NoTokensError(f"LMGen.step returned no tokens at measured frame {index}; "
                                    "raise warmup_frames above the model's largest delay")
            clock.mark("decode")
            wall = clock.wall_ms()
            is_warmup = index < warmup_frames
            if index == 0:
                result.first_step_s = wall["total"] / 1e3
            if is_warmup:
                result.warmup_s += wall["total"] / 1e3
            else:
                result.total_ms.append(wall["total"])
                for stage in STAGES:
                    result.stage_ms[stage].append(wall[stage])
                for stage, ms in clock.event_ms().items():
                    result.event_ms.setdefault(stage, []).append(ms)
            if on_frame is not None:
                on_frame(index, total, is_warmup, wall["total"])
    return result
