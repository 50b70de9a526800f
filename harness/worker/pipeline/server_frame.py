"""What NVIDIA PersonaPlex's server does per 80 ms frame beyond moshi's core, each part timed as its own stage.

Read from github NVIDIA/personaplex `moshi/moshi/server.py` (opus_loop): the incoming Opus stream is decoded to PCM
(sphn, 24 kHz); the frame is encoded by Mimi *and* by a second Mimi model (`other_mimi`, whose codes are
discarded); after `LMGen.step` the agent tokens are decoded by Mimi and again by `other_mimi` (discarded); the PCM
is copied to the host (`.cpu()`, a device synchronisation) and Opus-encoded; the text token is read with `.item()`
(another synchronisation). Nothing here is copied from it; the stages follow its order.

The Opus input is prepared before the frames (what a client would have sent) and fed one frame's worth of packets
at a time; the model is fed the original frame (the codec's own delay would shift frames) while the decode is
timed for real.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from moshi.models.compression import MimiModel

SERVER_STAGES = ("opus_decode", "encode", "other_encode", "lm_step", "decode", "other_decode", "to_host",
                 "opus_encode", "text_token")


class ServerDependencyError(RuntimeError):
    pass


def _sphn():  # noqa: ANN202 - the module
    try:
        import sphn
    except ImportError as exc:
        raise ServerDependencyError("serving: personaplex-server needs sphn (PersonaPlex's server encodes and "
                                    "decodes Opus with it): pip install sphn") from exc
    return sphn


@dataclass
class _OpusCodec:
    """sphn's streaming Opus pair, whichever API the installed sphn has (0.1: read_*; 0.2: return values)."""

    writer: object
    reader: object

    def encode(self, pcm: np.ndarray) -> bytes:
        out = self.writer.append_pcm(pcm)  # type: ignore[attr-defined]
        if out is None and hasattr(self.writer, "read_bytes"):
            out = self.writer.read_bytes()  # type: ignore[attr-defined]
        return bytes(out or b"")

    def decode(self, packet: bytes) -> np.ndarray:
        out = self.reader.append_bytes(packet)  # type: ignore[attr-defined]
        if out is None and hasattr(self.reader, "read_pcm"):
            out = self.reader.read_pcm()  # type: ignore[attr-defined]
        return np.asarray(out if out is not None else np.zeros(0, np.float32))


def _codec(sample_rate: int) -> _OpusCodec:
    sphn = _sphn()
    return _OpusCodec(sphn.OpusStreamWriter(sample_rate), sphn.OpusStreamReader(sample_rate))


class ServerExtras:
    """Per-stream Opus codecs, the duplicate Mimi, and the input each stream's client would have sent."""

    def __init__(self, other_mimi: MimiModel, audio: torch.Tensor, frame_size: int) -> None:
        self.other_mimi = other_mimi
        sample_rate = int(other_mimi.sample_rate)
        batch, _, samples = audio.shape
        host = audio.detach().to("cpu", torch.float32).numpy()
        client = [_codec(sample_rate) for _ in range(batch)]
        frames = samples // frame_size
        # packets[b][i]: what stream b's client sent for frame i
        self.packets = [[client[b].encode(host[b, 0, i * frame_size:(i + 1) * frame_size]) for i in range(frames)]
                        for b in range(batch)]
        self.inbound = [_codec(sample_rate) for _ in range(batch)]
        self.outbound = [_codec(sample_rate) for _ in range(batch)]

    def decode_input(self, index: int) -> int:
        """Opus-decode this frame's packets for every stream; returns the samples decoded (the codec buffers)."""
        decoded = 0
        for stream, codec in enumerate(self.inbound):
            packets = self.packets[stream]
            decoded += int(codec.decode(packets[index % len(packets)]).shape[-1])
        return decoded

    def encode_output(self, pcm_host: torch.Tensor) -> int:
        sent = 0
        for stream, codec in enumerate(self.outbound):
            sent += len(codec.encode(pcm_host[stream, 0].numpy()))
        return sent
