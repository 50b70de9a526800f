"""The servers that can deploy PersonaPlex, the software each runs on, and the latency facts of what serves it
(standard library only; which configuration each server loads is records.config.servers_that_load).

From github NVIDIA/personaplex: its server (`python -m moshi.server`, a fork of moshi 0.1.0, distribution
`moshi-personaplex`) loads the LM in bf16 only, has no int8 path, and offers `--cpu-offload`, which places layers
with accelerate's automatic device map from the GPU's free memory; its LMGen lets the user's audio enter the model
one frame later than stock moshi; it declares `torch<2.5`. PyPI moshi 0.2.13 (`python -m moshi.server`) serves
bf16 or fp16 (`--half`), int8 through `quantize` in the model's config, has no offload of its own, and declares
`torch<2.10`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.knowledge.wheels import VARIANTS, build_covers, family, sm, wheel_for

PERSONAPLEX_SERVER = "PersonaPlex's server (github NVIDIA/personaplex)"
MOSHI_SERVER = "moshi 0.2.13 (PyPI) with PersonaPlex weights"
HARNESS_ONLY = "no shipped server (the harness's measurement only)"

# One more frame of the user's audio before the model hears it, in NVIDIA's LMGen.
PERSONAPLEX_INPUT_LAG_FRAMES = 1


@dataclass(frozen=True)
class ServerSoftware:
    """A shipped server: what it is called, the torch range its package declares, and how it is started."""

    serving: str  # the frame that measures it (records.config.Serving value)
    name: str
    package: str
    torch_below: str  # the package's declared upper bound: `torch<X`
    command: str


SERVERS: dict[str, ServerSoftware] = {
    "personaplex-server": ServerSoftware("personaplex-server", PERSONAPLEX_SERVER, "moshi-personaplex 0.1.0", "2.5",
                                         'python -m moshi.server --ssl "$SSL_DIR"'),
    "moshi-server": ServerSoftware("moshi-server", MOSHI_SERVER, "moshi 0.2.13", "2.10", "python -m moshi.server"),
}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def archs_below(torch_below: str) -> tuple[str, ...]:
    """Every GPU architecture some official torch wheel older than `torch_below` carries kernels for."""
    limit = _version(torch_below)
    archs: list[str] = []
    for v in VARIANTS:
        if _version(v.torch_first) < limit:
            archs += [a for a in v.archs if a not in archs]
    return tuple(archs)


def missing_kernels(serving: str, compute_capability: Optional[str]) -> Optional[str]:
    """Why the server's software, as its package pins torch, has no kernels for this GPU; None when it has (or there
    is no GPU: every server runs on a CPU)."""
    server = SERVERS.get(serving)
    if server is None or not compute_capability:
        return None
    if build_covers(compute_capability, archs_below(server.torch_below)):
        return None
    advice = wheel_for(compute_capability)
    return (f"{server.name} declares torch<{server.torch_below}, and no torch wheel before {server.torch_below} "
            f"carries {family(compute_capability)} ({sm(compute_capability)}) kernels; it runs only with its torch "
            f"replaced outside its pin ({advice.command}, then its package with --no-deps)")
