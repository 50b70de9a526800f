"""What a shipped server does per 80 ms frame beyond moshi's core, each part timed as its own stage.

NVIDIA PersonaPlex's server (github NVIDIA/personaplex `moshi/moshi/server.py`, opus_loop): the incoming Opus
stream is decoded to PCM (sphn, 24 kHz); the frame is encoded by Mimi *and* by a second Mimi model (`other_mimi`,
whose codes are discarded); after `LMGen.step` the agent tokens (`tokens[:, 1:9]`) are decoded by Mimi and again by
`other_mimi` (discarded); the PCM is copied to the host (`.cpu()`, a device synchronisation) and Opus-encoded; the
text token is read with `.item()` (another synchronisation).

PyPI moshi 0.2.13's server (`moshi/server.py`, recv_loop and decode_and_send): Opus decode, Mimi encode,
`LMGen.step`, Mimi decode of `tokens[:, 1:]` (every codebook the depformer produced: with PersonaPlex's dep_q=16
that includes the user's predicted codebooks, as the stock server does), `.cpu()`, Opus encode, `.item()`; no
second Mimi. (It also resets Mimi's encoder once after a call's first input frame: once per call, not per frame.)
Nothing here is copied from either; the stages follow their order.

The Opus input is prepared before the frames (what a client would have sent) and fed one frame's worth of packets
at a time; the model is fed the original frame (the codec's own delay would shift frames) while the decode is
timed for real.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from moshi.models.compression import MimiModel

SERVER_STAGES = ("opus_decode", "encode", "other_encode", "lm_step", "decode", "other_decode", "to_host",
                 "opus_encode", "text_token")  # NVIDIA PersonaPlex's server
MOSHI_SERVER_STAGES = ("opus_decode", "encode", "lm_step", "decode", "to_host", "opus_encode", "text_token")
STAGES_BY_SERVING = {"personaplex-server": SERVER_STAGES, "moshi-server": MOSHI_SERVER_STAGES}


class ServerDependencyError(RuntimeError):
    pass


def _sphn():  # noqa: ANN202 - the module
    try:
        import sphn
    except ImportError as exc:
        raise ServerDependencyError("a server frame (serving: personaplex-server or moshi-server) needs sphn (both "
                                    "servers encode and decode Opus with it): pip install sphn") from exc
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
    """Per-stream Opus codecs, the duplicate Mimi (NVIDIA's server only), and the input each stream's client would
    have sent."""

    def __init__(self, serving: str, audio: torch.Tensor, frame_size: int, sample_rate: int,
                 other_mimi: Optional[MimiModel] = None) -> None:
        if serving not in STAGES_BY_SERVING:
            raise ValueError(f"not a server frame: {serving!r}")
        if (serving == "personaplex-server") != (other_mimi is not None):
            raise ValueError("NVIDIA's server frame runs a second Mimi; moshi's server frame does not")
        self.serving, self.stages, self.other_mimi = serving, STAGES_BY_SERVING[serving], other_mimi
        # PyPI's server decodes every generated codebook; NVIDIA's the agent's 8.
        self.decoded_rows = slice(1, None) if serving == "moshi-server" else slice(1, 9)
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
