"""Describe a preset's architecture from the real moshi modules, built on the meta device (no memory).

The parent's memory planner works from these exact counts instead of re-deriving moshi's layout.
"""

from __future__ import annotations

import torch
from moshi.modules.transformer import RMSNorm, StreamingMultiheadAttention
from torch import nn

from harness.contract.wire import ArchitectureFacts, BlockFacts, KVFacts
from harness.worker.engine.architecture import lm_kwargs, lm_on_meta, mimi_on_meta
from harness.worker.engine.synthetic import lm_blocks


def _block_facts(name: str, block: nn.Module) -> BlockFacts:
    linears = [m for m in block.modules() if isinstance(m, nn.Linear)]
    float32 = [p for m in block.modules() if isinstance(m, RMSNorm) and m.alpha.dtype == torch.float32
               for p in m.parameters(recurse=False)]
    return BlockFacts(
        name=name,
        params=sum(p.numel() for p in block.parameters()),
        linear_params=sum(m.weight.numel() for m in linears),
        linear_out_features=sum(m.out_features for m in linears),
        float32_params=sum(p.numel() for p in float32),
    )


def _kv_family(name: str, root: nn.Module, float32: bool = False, per_step: bool = False) -> list[KVFacts]:
    # NVIDIA's fork (moshi 0.1.0) has neither cross-attention nor grouped KV heads: absent attributes mean neither.
    layers = [m for m in root.modules()
              if isinstance(m, StreamingMultiheadAttention) and not getattr(m, "cross_attention", False)]
    if not layers:
        return []
    first = layers[0]
    capacity = first.context if first.context is not None else first.weights_per_step
    return [KVFacts(name=name, layers=len(layers), capacity=int(capacity),
                    kv_heads=first.num_heads // getattr(first, "kv_repeat", 1),
                    head_dim=first.embed_dim // first.num_heads,
                    float32=float32, per_step=per_step)]


def describe_preset(preset: str) -> ArchitectureFacts:
    lm = lm_on_meta(preset, torch.bfloat16)
    mimi = mimi_on_meta()
    kwargs = lm_kwargs(preset)
    kv = _kv_family("temporal", lm.transformer)
    if lm.depformer is not None:
        kv += _kv_family("depformer", lm.depformer, per_step=True)
    kv += _kv_family("mimi", mimi, float32=True)
    return ArchitectureFacts(
        preset=preset,
        lm_parameters=sum(p.numel() for p in lm.parameters()),
        mimi_parameters=sum(p.numel() for p in mimi.parameters()),
        mimi_buffer_bytes=sum(b.numel() * b.element_size() for b in mimi.buffers()),
        dim=kwargs["dim"],
        temporal_layers=len(lm.transformer.layers),
        context=kwargs["context"],
        dep_q=lm.dep_q,
        n_q=lm.n_q,
        text_card=lm.text_card,
        card=lm.card,
        blocks=[_block_facts(name, block) for name, block in lm_blocks(lm)],
        kv=kv,
    )
