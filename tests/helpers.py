"""Real moshi models at small size with synthetic weights, built in the test process (CPU)."""

from __future__ import annotations

import torch

from harness.worker.engine.architecture import lm_on_meta, mimi_on_meta
from harness.worker.engine.synthetic import SyntheticWeights, lm_blocks


def synthetic_lm(preset: str = "personaplex-tiny", dtype: torch.dtype = torch.float32, seed: int = 0):  # noqa: ANN201
    lm = lm_on_meta(preset, dtype)
    weights = SyntheticWeights(seed)
    for _, block in lm_blocks(lm):
        weights.materialize(block, "cpu")
    return lm


def synthetic_mimi(seed: int = 1):  # noqa: ANN201
    mimi = mimi_on_meta()
    SyntheticWeights(seed).materialize(mimi, "cpu")
    return mimi
