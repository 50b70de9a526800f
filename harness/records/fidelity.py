"""What a configuration's output must keep of the bf16 reference's to be recommended (the scenario's `fidelity:`).

The figures come from the worker (harness.contract.wire.FidelityReading): per output stream, teacher-forced top-1
agreement and KL(reference || candidate) in nats, and the free-run greedy token agreement. The defaults are the
field's own bars, documented in docs/fidelity.md:
- llama.cpp (`llama-perplexity --kl-divergence`, tools/perplexity/README.md, the tables of its PR #6936) judges a
  quantized model by the KL of its logits from the base model's and its "same top p" share: q8_0 keeps a mean KL of
  the order of 1e-3 and ~98% top-1, q4_K_M of the order of 1e-2..3e-2 and low-to-mid 90s; Unsloth's published 2-bit
  dynamic GGUFs sit near 0.18 and ~90%. The defaults accept a mean KL up to 0.1 nats and 90% top-1 per stream.
- NVIDIA's TensorRT port of PersonaPlex gates on 70-80% greedy token agreement with the PyTorch reference; the
  default takes its lower bound, 70%.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class FidelityCriteria(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    frames: int = Field(default=32, ge=0, le=100_000,
                        description="teacher-forced frames compared after the timed frames (2.6 s at 80 ms); 0: off")
    max_kl_mean: float = Field(default=0.1, ge=0.0, le=100.0,
                               description="largest mean KL(reference || candidate), nats, of any stream")
    min_top1_agreement: float = Field(default=0.90, ge=0.0, le=1.0,
                                      description="smallest teacher-forced top-1 agreement of any stream")
    min_greedy_agreement: Optional[float] = Field(
        default=0.70, ge=0.0, le=1.0,
        description="smallest free-run greedy token agreement (NVIDIA's TensorRT gate: 70-80%); null: not judged")
