"""What `device: auto` becomes on a machine: the one rule (standard library only).

`auto` never silently becomes another device: a machine with an NVIDIA GPU that torch cannot use gets a
diagnosed skip (running on the CPU instead would measure the CPU and call it the GPU), and a run resolved to
the CPU says so in its name and its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass(frozen=True)
class AutoChoice:
    device: str  # "cuda" or "cpu"
    skip_reason: Optional[str] = None  # set when the run must not execute here (a GPU torch cannot use)

    @property
    def broken_cuda(self) -> bool:
        return self.skip_reason is not None


def cpu_name(name: str) -> str:
    """The run's name once `auto` resolved to the CPU: the device is visible wherever the name is."""
    if name.startswith("auto-"):
        return "cpu-" + name[len("auto-"):]
    return name if name.endswith("-cpu") else f"{name}-cpu"


def resolve_auto(cuda_available: bool, gpu_names: Sequence[str], cuda_unavailable_reason: str) -> AutoChoice:
    if cuda_available:
        return AutoChoice("cuda")
    if gpu_names:
        names = ", ".join(sorted(set(gpu_names)))
        why = cuda_unavailable_reason or "torch.cuda.is_available() is False"
        return AutoChoice("cuda", skip_reason=f"device auto: this machine has {names} but torch cannot use it "
                                              f"({why}); not run on the CPU instead, which would measure something else")
    return AutoChoice("cpu")
