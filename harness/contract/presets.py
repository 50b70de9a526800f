"""Model presets as plain data, readable by the parent without importing torch.

The worker turns a preset into `LMModel` keyword arguments by applying `overrides` on top of
moshi's own `moshi.models.loaders._lm_kwargs`, so the real architecture stays the source of truth.
Scaled presets keep the family (n_q, dep_q, delays, card, text_card, Mimi) and shrink width/depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    family: str  # "personaplex" (dep_q=16) or "moshi" (dep_q=8)
    overrides: dict[str, Any] = field(default_factory=dict)
    scaled: bool = False


def _scaled(dim: int, heads: int, layers: int, dep_dim: int, dep_heads: int, dep_layers: int) -> dict[str, Any]:
    return {
        "dim": dim,
        "num_heads": heads,
        "num_layers": layers,
        "depformer_dim": dep_dim,
        "depformer_num_heads": dep_heads,
        "depformer_num_layers": dep_layers,
        "depformer_dim_feedforward": int(4.125 * dep_dim),
    }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "personaplex-7b",
            "NVIDIA PersonaPlex 7B: 32x4096 temporal transformer, 6x1024 depformer, dep_q=16 (8.37e9 parameters)",
            "personaplex",
            {"dep_q": 16},
        ),
        Preset(
            "moshi-7b",
            "Kyutai Moshi 7B as released: same temporal transformer, depformer with dep_q=8",
            "moshi",
            {},
        ),
        Preset(
            "personaplex-small",
            "PersonaPlex family scaled to 8x512 / 2x256 (same n_q, dep_q, delays, Mimi) for quick GPU or CPU checks",
            "personaplex",
            {"dep_q": 16, **_scaled(512, 8, 8, 256, 4, 2)},
            scaled=True,
        ),
        Preset(
            "personaplex-tiny",
            "PersonaPlex family scaled to 2x128 / 2x128 (same n_q, dep_q, delays, Mimi): CI on 2 CPU cores",
            "personaplex",
            {"dep_q": 16, **_scaled(128, 4, 2, 128, 4, 2)},
            scaled=True,
        ),
        Preset(
            "moshi-tiny",
            "Moshi family (dep_q=8) scaled to 2x128 / 2x128: CI on 2 CPU cores",
            "moshi",
            _scaled(128, 4, 2, 128, 4, 2),
            scaled=True,
        ),
    ]
}

# Every preset uses moshi's delays, whose largest value is 1: the first LMGen.step of a session
# returns no tokens, so at least this many warmup frames are needed before frames can be measured.
MIN_WARMUP_FRAMES = 2
# ... and the agent's audio for a step comes out that many frames later (moshi's acoustic delay).
MAX_DELAY_FRAMES = 1
# moshi's CUDAGraphed runs its first call eagerly and captures on the second; Mimi's decoder is first called once
# the delay has passed (frame MAX_DELAY_FRAMES), so its capture lands on frame MAX_DELAY_FRAMES + 1. With CUDA
# graphs on, at least this many warmup frames keep every capture out of the measured frames.
GRAPH_WARMUP_FRAMES = MAX_DELAY_FRAMES + 2


def preset_names() -> list[str]:
    return sorted(PRESETS)
