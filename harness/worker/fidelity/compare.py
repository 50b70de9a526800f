"""Candidate against reference, per stream: top-1 agreement and KL(reference || candidate), llama.cpp's practice.

llama.cpp's `perplexity --kl-divergence` judges a quantized model by the KL divergence of its token distribution
from the base model's on the same tokens (mean, percentiles, max) and by how often both pick the same top token;
this does the same per Moshi output stream. KL is computed in float64 from float32 log-softmax, so that a
candidate identical to the reference reads exactly 0.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from harness.contract.wire import StreamFidelity
from harness.worker.fidelity.trace import Trace

AGENT_CODEBOOKS = 8  # the agent's audio: codebook 0 semantic, 1..7 acoustic (PersonaPlex's 8..15 are the user's)


def _streams(t: Trace) -> dict[str, torch.Tensor]:
    """[frames, rows, vocab] logits per stream."""
    audio = t.audio_logits[:, :AGENT_CODEBOOKS]
    return {"text": t.text_logits[:, None], "semantic": audio[:, :1], "acoustic": audio[:, 1:]}


def _token_columns(tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"text": tokens[:, :1], "semantic": tokens[:, 1:2], "acoustic": tokens[:, 2:1 + AGENT_CODEBOOKS]}


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default), as harness.stats does."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def finite_frames(candidate: Trace) -> torch.Tensor:
    """[frames] bool: the candidate's logits of that frame are all finite."""
    return (torch.isfinite(candidate.text_logits).all(dim=-1)
            & torch.isfinite(candidate.audio_logits).flatten(1).all(dim=-1))


def compare(reference: Trace, forced: Trace, free_run: Optional[Trace]) -> list[StreamFidelity]:
    """`forced`: the candidate teacher-forced on the reference's tokens; `free_run`: its own greedy run."""
    ok = finite_frames(forced)
    out = []
    ref_streams, cand_streams = _streams(reference), _streams(forced)
    ref_tokens = _token_columns(reference.tokens)
    free_tokens = _token_columns(free_run.tokens) if free_run is not None else None
    for name, ref in ref_streams.items():
        cand = cand_streams[name]
        agree = (cand.argmax(dim=-1) == ref.argmax(dim=-1)).double().mean().item()
        p = torch.log_softmax(ref.double(), dim=-1)
        q = torch.log_softmax(cand.double(), dim=-1)
        kl = (p.exp() * (p - q)).sum(dim=-1)[ok]  # [finite frames, rows]
        kl = kl.clamp_min(0.0)  # rounding can leave -1e-17 where the two agree
        values = kl.flatten().tolist()
        greedy = 0.0
        if free_tokens is not None:
            greedy = (free_tokens[name] == ref_tokens[name]).double().mean().item()
        out.append(StreamFidelity(
            stream=name, codebooks=ref.shape[1], top1_agreement=agree,
            kl_mean=sum(values) / len(values) if values else 0.0, kl_p99=_percentile(values, 99),
            kl_max=max(values) if values else 0.0, kl_by_frame=kl.mean(dim=-1).tolist(), greedy_agreement=greedy))
    return out


def greedy_summary(reference: Trace, free_run: Trace) -> tuple[float, Optional[int]]:
    """(share of equal tokens over the output streams, first frame where any differs)."""
    cols = slice(0, 1 + AGENT_CODEBOOKS)
    same = free_run.tokens[:, cols] == reference.tokens[:, cols]
    differs = (~same.all(dim=-1)).nonzero()
    return same.double().mean().item(), int(differs[0, 0]) if differs.numel() else None
