"""Common GPUs, from their public specifications, so a scenario can be planned for a GPU not on hand.

Bandwidth is the memory bandwidth of the card (GB/s); host_link_gbs the usable host-to-device
bandwidth of its PCIe link (what CPU offload pays per step).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30


@dataclass(frozen=True)
class GpuSpec:
    name: str
    vram_gib: float
    compute_capability: str
    bandwidth_gbs: float
    host_link_gbs: float
    aliases: tuple[str, ...] = ()


GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("NVIDIA GeForce GTX 1080 Ti", 11.0, "6.1", 484, 12, ("gtx1080ti", "1080ti", "gtx 1080 ti")),
    GpuSpec("NVIDIA GeForce RTX 3090", 24.0, "8.6", 936, 25, ("rtx3090", "3090")),
    GpuSpec("NVIDIA GeForce RTX 4090", 24.0, "8.9", 1008, 25, ("rtx4090", "4090")),
    GpuSpec("NVIDIA GeForce RTX 5090", 32.0, "12.0", 1792, 50, ("rtx5090", "5090")),
    GpuSpec("NVIDIA L4", 24.0, "8.9", 300, 25, ("l4",)),
    GpuSpec("NVIDIA A100-SXM4-40GB", 40.0, "8.0", 1555, 25, ("a100", "a100-40gb")),
    GpuSpec("NVIDIA A100-SXM4-80GB", 80.0, "8.0", 2039, 25, ("a100-80gb",)),
    GpuSpec("NVIDIA H100 80GB HBM3", 80.0, "9.0", 3350, 50, ("h100", "h100-sxm")),
    GpuSpec("NVIDIA H100 PCIe", 80.0, "9.0", 2000, 50, ("h100-pcie",)),
    GpuSpec("NVIDIA H200", 141.0, "9.0", 4800, 50, ("h200",)),
)


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_gpu(name: str) -> GpuSpec | None:
    """Match an alias or a device name as NVML/torch report it (case, spaces and dashes ignored)."""
    wanted = _norm(name)
    for spec in GPUS:
        if wanted in {_norm(spec.name), *(_norm(a) for a in spec.aliases)}:
            return spec
    for spec in GPUS:  # "NVIDIA GeForce RTX 5090 D" and friends
        if _norm(spec.name) in wanted or any(_norm(a) in wanted for a in spec.aliases if len(a) > 4):
            return spec
    return None


def gpu_names() -> list[str]:
    return [spec.aliases[0] if spec.aliases else spec.name for spec in GPUS]
