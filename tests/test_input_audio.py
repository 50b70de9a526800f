"""`input: PATH.wav`: a recording read and resampled to Mimi's 24 kHz in the worker (sphn), mono, looped."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness.worker.pipeline.audio import input_audio, read_wav  # noqa: E402


def _write_wav(path: Path, rate: int, seconds: float, channels: int = 1) -> None:
    n = int(rate * seconds)
    frames = b"".join(struct.pack("<" + "h" * channels, *([int(8000 * math.sin(2 * math.pi * 440 * i / rate))]
                                                        * channels)) for i in range(n))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)


def test_a_16khz_stereo_recording_becomes_24khz_mono(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    _write_wav(path, 16_000, 0.5, channels=2)
    pcm = read_wav(str(path), 24_000)
    assert pcm.shape[0] == 1 and abs(pcm.shape[1] - 12_000) <= 64  # 0.5 s at 24 kHz (the resampler's edges aside)
    peak = pcm.abs().max().item()
    assert 0.2 < peak < 0.3  # 8000 / 32768: the level is kept, the channels averaged, not summed
    audio = input_audio(str(path), 24_000, 2, seed=0)
    assert audio.shape[:2] == (2, 1) and torch.equal(audio[0], audio[1])  # every stream hears the same


def test_default_is_the_seeded_signal_and_a_too_short_file_is_refused(tmp_path: Path) -> None:
    assert torch.equal(input_audio(None, 24_000, 1, 3), input_audio(None, 24_000, 1, 3))
    short = tmp_path / "short.wav"
    _write_wav(short, 24_000, 0.02)
    with pytest.raises(ValueError, match="shorter than one 80 ms frame"):
        input_audio(str(short), 24_000, 1, 0)
