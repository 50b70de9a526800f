"""A caller's microphone: a deterministic speech-like 24 kHz signal, 80 ms at a time, Opus-encoded with sphn."""

from __future__ import annotations

import math

import numpy as np
import sphn

from harness.endpoint.protocol import FRAME_SAMPLES, SAMPLE_RATE

LOOP_SECONDS = 10.0


def speech_like(seconds: float, voice: int) -> np.ndarray:
    """Float32 PCM in [-1, 1]: gliding voiced tone with harmonics, syllable-rate envelope, a little noise.
    `voice` shifts the pitch so that callers do not all say the same thing."""
    n = int(min(seconds, LOOP_SECONDS) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120.0 + 17.0 * (voice % 7) + 25.0 * np.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 * (1 + np.sin(2 * math.pi * 4.0 * t)) ** 2
    noise = 0.02 * np.random.default_rng(voice).standard_normal(n)
    return np.clip(0.15 * envelope * voiced + noise, -1, 1).astype(np.float32)


class Microphone:
    """Frame i of the call, Opus-encoded (an Ogg page, possibly empty while the encoder fills)."""

    def __init__(self, voice: int) -> None:
        self._pcm = speech_like(LOOP_SECONDS, voice)
        self._writer = sphn.OpusStreamWriter(SAMPLE_RATE)
        self._frames = len(self._pcm) // FRAME_SAMPLES

    def frame(self, index: int) -> bytes:
        start = (index % self._frames) * FRAME_SAMPLES
        return bytes(self._writer.append_pcm(self._pcm[start:start + FRAME_SAMPLES]))


class Speaker:
    """Decodes the server's Ogg/Opus stream; returns how many samples each message added."""

    def __init__(self) -> None:
        self._reader = sphn.OpusStreamReader(SAMPLE_RATE)

    def samples(self, payload: bytes) -> int:
        pcm = self._reader.append_bytes(payload)
        return int(pcm.shape[-1])
