"""Which software can serve a configuration, and the latency facts of what serves it (standard library only).

From github NVIDIA/personaplex: its server (`python -m moshi.server`, a fork of moshi 0.1.0) loads the LM in
bf16 only, has no int8 path, and offers `--cpu-offload`, which places layers with accelerate's automatic device
map from the GPU's free memory; its LMGen lets the user's audio enter the model one frame later than stock moshi.
PyPI moshi 0.2.13 (`python -m moshi.server`) serves bf16 or fp16 (`--half`), int8 through `quantize` in the
model's config, and has no offload of its own.
"""

from __future__ import annotations

PERSONAPLEX_SERVER = "PersonaPlex's server (github NVIDIA/personaplex)"
MOSHI_SERVER = "moshi 0.2.13 (PyPI) with PersonaPlex weights"
HARNESS_ONLY = "no shipped server (the harness's measurement only)"

# One more frame of the user's audio before the model hears it, in NVIDIA's LMGen.
PERSONAPLEX_INPUT_LAG_FRAMES = 1


def deployable_by(dtype: str, quantize: str, offload: str) -> str:
    """Who can serve this configuration as measured."""
    servers = []
    if dtype == "bfloat16" and quantize == "none" and offload in ("none", "auto"):
        servers.append(PERSONAPLEX_SERVER + (" with --cpu-offload" if offload == "auto" else ""))
    if dtype in ("bfloat16", "float16") and offload == "none":
        servers.append(MOSHI_SERVER + (" (--half)" if dtype == "float16" else "")
                       + (" (quantize: true in config.json)" if quantize == "int8" else ""))
    if offload == "cpu":
        return "the harness's tuned offload (a fraction of the layers): " + HARNESS_ONLY
    return "; or ".join(servers) or HARNESS_ONLY
