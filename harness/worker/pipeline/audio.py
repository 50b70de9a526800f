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


def read_wav(path: str, sample_rate: int) -> torch.Tensor:
    """[1, samples] float32 mono at `sample_rate` from a .wav: sphn (moshi's own audio library: decodes and
    resamples) where installed, else the standard library's `wave` for 16-bit PCM already at
    Mimi's rate. Stereo is mixed down, as a microphone's single channel."""
    try:
        import sphn
    except ImportError:
        sphn = None
    if sphn is not None:
        data, _ = sphn.read(path, sample_rate=sample_rate)
        pcm = torch.from_numpy(data).to(torch.float32)
        # sphn's resampler works in blocks and pads the last one: keep the recording's own duration
        duration = sphn.durations([path])[0]
        if duration is not None:
            pcm = pcm[:, :max(1, round(duration * sample_rate))]
        return pcm.mean(dim=0, keepdim=True)
    import wave

    with wave.open(path, "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getframerate() != sample_rate:
            raise ValueError(f"{path}: without sphn only 16-bit PCM at {sample_rate} Hz can be read "
                             f"(this one: {8 * wav.getsampwidth()}-bit, {wav.getframerate()} Hz)")
        channels, raw = wav.getnchannels(), wav.readframes(wav.getnframes())
    samples = torch.frombuffer(bytearray(raw), dtype=torch.int16).to(torch.float32) / 32768.0
    return samples.view(-1, channels).mean(dim=1)[None]


def input_audio(wav: "str | None", sample_rate: int, batch_size: int, seed: int) -> torch.Tensor:
    """[batch, 1, samples]: the scenario's input (a recording, every stream hearing it) or the seeded signal."""
    if wav is None:
        return speech_like(sample_rate, batch_size, seed)
    pcm = read_wav(wav, sample_rate)
    if pcm.shape[-1] < int(sample_rate / 12.5):
        raise ValueError(f"{wav}: shorter than one 80 ms frame")
    return pcm.clamp(-1, 1).expand(batch_size, -1)[:, None, :].contiguous()
