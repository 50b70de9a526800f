"""Which NVIDIA driver runs which CUDA runtime, with CUDA minor-version compatibility.

Source: CUDA Toolkit release notes, table 3 "CUDA Toolkit and Corresponding Driver Versions" and
"CUDA minor version compatibility" (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/ and
https://docs.nvidia.com/deploy/cuda-compatibility/). Within one CUDA major version a runtime runs on
any driver of that major's minimum (11.x: >= 450.80.02, 12.x: >= 525.60.13, 13.x: >= 580), except
features that need the newer driver, chiefly JIT-compiling PTX newer than the driver: then it fails
with "the provided PTX was compiled with an unsupported toolchain".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

# CUDA runtime -> (Linux driver, Windows driver) that ships with the toolkit (full compatibility)
TOOLKIT_DRIVER: dict[str, tuple[str, str]] = {
    "11.8": ("520.61.05", "520.06"),
    "12.1": ("530.30.02", "531.14"),
    "12.4": ("550.54.14", "551.61"),
    "12.6": ("560.28.03", "560.76"),
    "12.8": ("570.26", "570.65"),
    "12.9": ("575.51.03", "576.02"),
    "13.0": ("580.65.06", "580.88"),
}
# the oldest driver of each CUDA major that minor-version compatibility accepts (Linux, Windows)
MINOR_COMPAT_FLOOR: dict[int, tuple[str, str]] = {11: ("450.80.02", "452.39"), 12: ("525.60.13", "527.41"),
                                                   13: ("580.65.06", "580.88")}

Level = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class DriverVerdict:
    level: Level
    finding: str
    remedy: str = ""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def driver_for(cuda: str, windows: bool = False) -> Optional[str]:
    pair = TOOLKIT_DRIVER.get(".".join(cuda.split(".")[:2]))
    return (pair[1] if windows else pair[0]) if pair else None


def check_driver(driver_cuda: str, build_cuda: str, *, driver: str = "", needs_ptx_jit: bool = False,
                 windows: bool = False) -> DriverVerdict:
    """Driver (the CUDA version it supports, as NVML reports) against the torch build's CUDA runtime."""
    have, need = _version(driver_cuda)[:2], _version(build_cuda)[:2]
    label = f"driver {driver} (CUDA {driver_cuda})" if driver else f"a driver for CUDA {driver_cuda}"
    wanted = driver_for(build_cuda, windows)
    upgrade = f"update the NVIDIA driver to {wanted} or newer" if wanted else "update the NVIDIA driver"
    if have >= need:
        return DriverVerdict("pass", f"{label} runs CUDA {build_cuda} wheels")
    if have[0] < need[0]:
        return DriverVerdict("fail", f"{label} is older than the CUDA {need[0]}.x runtime of this torch "
                                     f"(CUDA {build_cuda}): no minor-version compatibility across major versions; "
                                     "'The NVIDIA driver on your system is too old'", upgrade)
    floor = MINOR_COMPAT_FLOOR.get(need[0])
    if floor and driver and _version(driver) < _version(floor[1] if windows else floor[0]):
        return DriverVerdict("fail", f"{label} is below {floor[1] if windows else floor[0]}, the oldest driver "
                                     f"CUDA {need[0]}.x minor-version compatibility accepts", upgrade)
    if needs_ptx_jit:
        return DriverVerdict("fail", f"{label} is older than CUDA {build_cuda} and this GPU is only covered by PTX, "
                                     "which an older driver cannot JIT-compile", upgrade)
    return DriverVerdict("warn", f"{label} is older than the torch build's CUDA {build_cuda}: it runs through "
                                 "minor-version compatibility (the GPU has native kernels, no PTX JIT needed), but "
                                 "newer PTX, e.g. from a newer Triton, would fail", upgrade)
