"""Model architecture from moshi's own configuration, built on the meta device (no memory, no init)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel

from harness.contract.presets import PRESETS
from harness.worker.flavour import is_nvidia

MIMI_CODEBOOKS = 8  # Mimi tokens per 80 ms frame, per stream (user in, agent out)
MIMI_SAMPLE_RATE = loaders.SAMPLE_RATE
MIMI_FRAME_SAMPLES = int(loaders.SAMPLE_RATE / loaders.FRAME_RATE)  # 1920


def lm_kwargs(preset_name: str) -> dict[str, Any]:
    preset = PRESETS[preset_name]
    kwargs = dict(loaders._lm_kwargs)
    kwargs.update(preset.overrides)
    return kwargs


def lm_on_meta(preset_name: str, dtype: torch.dtype) -> LMModel:
    # The device context also catches the few nn.Linear that LMModel creates without a device
    # argument (text_linear, depformer_in, linears), which would otherwise be allocated and
    # kaiming-initialised on the CPU.
    with torch.device("meta"):
        lm = LMModel(device="meta", dtype=dtype, **lm_kwargs(preset_name)).eval()
    if is_nvidia():
        # NVIDIA's fork creates those layers (and its out_norm) without a dtype, in float32, and its loader
        # (get_moshi_lm) then casts every tensor to the run's dtype: `model.to(device, dtype)`. Without the same
        # cast a bf16 fork model multiplies bf16 activations by float32 text_linear weights and fails.
        lm = lm.to(dtype)
    return lm


def mimi_on_meta() -> MimiModel:
    with torch.device("meta"):
        if "num_codebooks" in inspect.signature(loaders.get_mimi).parameters:
            return loaders.get_mimi(None, device="meta", num_codebooks=MIMI_CODEBOOKS)
        return _fork_mimi()


def _fork_mimi() -> MimiModel:
    """NVIDIA's fork: its get_mimi always loads a file, so its architecture is built from its own keyword tables,
    as its get_mimi builds it before loading."""
    from moshi.modules import SEANetDecoder, SEANetEncoder, transformer
    from moshi.quantization import SplitResidualVectorQuantizer

    encoder = SEANetEncoder(**loaders._seanet_kwargs)
    decoder = SEANetDecoder(**loaders._seanet_kwargs)
    mimi = MimiModel(
        encoder, decoder, SplitResidualVectorQuantizer(**loaders._quantizer_kwargs), channels=1,
        sample_rate=loaders.SAMPLE_RATE, frame_rate=loaders.FRAME_RATE,
        encoder_frame_rate=loaders.SAMPLE_RATE / encoder.hop_length, causal=True, resample_method="conv",
        encoder_transformer=transformer.ProjectedTransformer(device="meta", **loaders._transformer_kwargs),
        decoder_transformer=transformer.ProjectedTransformer(device="meta", **loaders._transformer_kwargs))
    mimi.set_num_codebooks(MIMI_CODEBOOKS)
    return mimi.eval()
