"""Microphone input for the frame loop: a deterministic, speech-like 24 kHz signal.

The compute of a step does not depend on what is said; a voiced signal (gliding fundamental with
harmonics, syllable-rate envelope, a little noise) keeps Mimi's activations in their usual range.
"""

from __future__ import annotations

import math

import torch

SECONDS = 10.0  # a loop long enough that frames are not all alike; longer sessions cycle it


def speech_like(sample_rate: int, batch_size: int, seed: int) -> torch.Tensor:
    """[batch, 1, samples] float32 in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    n = int(SECONDS * sample_rate)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    out = []
    for b in range(batch_size):
        f0 = 120.0 + 40.0 * b + 25.0 * torch.sin(2 * math.pi * 0.7 * t)
        phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
        voiced = sum(torch.sin(k * phase) / k for k in range(1, 8))
        envelope = 0.5 * (1 + torch.sin(2 * math.pi * 4.0 * t)) ** 2
        noise = 0.02 * torch.randn(n, generator=generator, dtype=torch.float64)
        out.append((0.15 * envelope * voiced + noise).clamp(-1, 1))
    return torch.stack(out)[:, None, :].to(torch.float32)
