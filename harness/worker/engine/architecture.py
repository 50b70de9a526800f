"""Model architecture from moshi's own configuration, built on the meta device (no memory, no init)."""

from __future__ import annotations

from typing import Any

import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel

from harness.contract.presets import PRESETS

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
        return LMModel(device="meta", dtype=dtype, **lm_kwargs(preset_name)).eval()


def mimi_on_meta() -> MimiModel:
    with torch.device("meta"):
        return loaders.get_mimi(None, device="meta", num_codebooks=MIMI_CODEBOOKS)
