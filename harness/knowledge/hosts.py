"""What one dispatched op costs the host in eager PyTorch, by kind of host: the small table `harness plan` uses
for a machine it cannot measure (`harness plan --here` measures its own host in a worker instead).

Eager moshi is bound by the host when the GPU finishes a kernel faster than Python, the dispatcher and the CUDA
driver can issue the next one. The datacenter figure is FITTED on a published eager step (harness.plan.calibrate:
moshi's own eager frame on a GB300, whose host is a Grace CPU, over the ops one frame dispatches); the others are
that figure scaled by how fast the kind of CPU runs single-threaded Python, with the range their sources give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HostKind = Literal["datacenter", "desktop", "arm-soc"]


@dataclass(frozen=True)
class HostClass:
    kind: HostKind
    relative: float  # host cost per op relative to the fitted datacenter host
    low: float  # the range of `relative` this kind of host spans
    high: float
    source: str


HOSTS: dict[HostKind, HostClass] = {
    "datacenter": HostClass("datacenter", 1.0, 0.8, 1.25,
                            "fitted: https://github.com/NVIDIA/TensorRT-Model-Connect/issues/504 (moshi's official "
                            "eager frame on a GB300, Grace host, 47.9 ms); the range is the spread of server CPUs' "
                            "single-thread speed"),
    "desktop": HostClass("desktop", 0.75, 0.6, 1.0,
                         "desktop CPUs boost to 5-6 GHz against 2-3.8 GHz on server parts (single-thread Python and "
                         "driver calls scale with clock): https://www.cpubenchmark.net/singleThread.html"),
    "arm-soc": HostClass("arm-soc", 1.1, 0.8, 1.5,
                         "Grace/Cortex-X cores of GB10 and Thor: https://github.com/NVIDIA/personaplex/pull/103 "
                         "reports dispatch under 3 ms per frame there with CUDA graphs; eager is not published"),
}


def host_kind(gpu_name: str, memory_kind: str, laptop: bool = False) -> HostKind:
    """The host a GPU usually sits in: unified-memory parts are ARM SoCs, GeForce cards desktops, the rest servers."""
    if memory_kind == "unified":
        return "arm-soc"
    if "GeForce" in gpu_name or laptop:
        return "desktop"
    return "datacenter"
