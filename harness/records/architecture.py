"""A preset's architecture as counted on the real moshi modules (by a worker), for the planner."""

from __future__ import annotations

from pydantic import Field

from harness.records.base import Record


class BlockFacts(Record):
    """Parameters of one LM block (a temporal layer, the depformer, the embeddings, ...)."""

    name: str
    params: int
    linear_params: int = Field(description="nn.Linear weights: what int8 quantises")
    linear_out_features: int = Field(description="rows of those weights: one float32 int8 scale each")
    float32_params: int = Field(description="parameters kept in float32 whatever the dtype (RMSNorm f32)")


class KVFacts(Record):
    """One family of streaming attention caches: 2 x layers x batch x capacity x kv_heads x head_dim."""

    name: str
    layers: int
    capacity: int
    kv_heads: int
    head_dim: int
    float32: bool = Field(default=False, description="always float32 (Mimi) rather than the LM dtype")
    per_step: bool = Field(default=False, description="rebuilt within each step (depformer)")


class ArchitectureFacts(Record):
    preset: str
    lm_parameters: int
    mimi_parameters: int
    mimi_buffer_bytes: int
    dim: int
    temporal_layers: int
    context: int
    dep_q: int
    n_q: int
    text_card: int
    card: int
    blocks: list[BlockFacts]
    kv: list[KVFacts]

    def block(self, name: str) -> BlockFacts:
        return next(b for b in self.blocks if b.name == name)
