"""Which torch wheels carry kernels for which GPU architectures, and the pip command that fixes a gap.

Sources: the architecture lists of the official wheels (`torch.cuda.get_arch_list()`), as published
in PyTorch's release notes and the build matrix of pytorch/pytorch `.ci/manywheel/build_cuda.sh`
(https://github.com/pytorch/pytorch/blob/main/.ci/manywheel/build_cuda.sh) and RELEASE.md
(https://github.com/pytorch/pytorch/blob/main/RELEASE.md). moshi 0.2.13 needs torch < 2.10, and
Blackwell needs torch >= 2.7, so every remedy pins 'torch>=2.7,<2.10' unless the GPU needs otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

INDEX = "https://download.pytorch.org/whl/"
TORCH_RANGE = ">=2.7,<2.10"  # moshi 0.2.13 needs < 2.10; sm_120 kernels start at 2.7
PINNED_TORCH = "2.9.1"
PINNED_VARIANT = "cu128"

_PASCAL_TO_HOPPER = ("sm_50", "sm_60", "sm_61", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")
_VOLTA_TO_BLACKWELL = ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")


@dataclass(frozen=True)
class Variant:
    """One CUDA variant of the torch wheels over a range of torch releases."""

    tag: str
    cuda: str
    torch_first: str
    torch_last: Optional[str]  # None: still published
    archs: tuple[str, ...]
    note: str = ""


# Linux x86_64 wheels; the architectures are the sm_XY cubins each wheel ships.
VARIANTS: tuple[Variant, ...] = (
    Variant("cu118", "11.8", "2.0", "2.7", _PASCAL_TO_HOPPER, "last published for torch 2.7"),
    Variant("cu121", "12.1", "2.1", "2.5", _PASCAL_TO_HOPPER),
    Variant("cu124", "12.4", "2.4", "2.6", _PASCAL_TO_HOPPER),
    Variant("cu126", "12.6", "2.6", None, _PASCAL_TO_HOPPER,
            "the last variant with Maxwell/Pascal (sm_50-sm_61) kernels, and it is going away: PyTorch drops "
            "cu126 after 2.9/2.10, so pin torch<2.10 with it"),
    # 2.7's cu128 wheel started at sm_75; from 2.8 it carries Volta too (sm_70..sm_120), never Pascal
    Variant("cu128", "12.8", "2.7", None, _VOLTA_TO_BLACKWELL,
            "first variant with Blackwell (sm_100, sm_120); no Pascal or older kernels"),
    Variant("cu129", "12.9", "2.8", None, _VOLTA_TO_BLACKWELL + ("sm_103", "sm_121")),
    Variant("cu130", "13.0", "2.9", None, ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_110", "sm_120"),
            "CUDA 13 dropped Maxwell, Pascal and Volta; needs driver 580 or newer"),
)

# The pinned torch of this project, as installed by scripts/ and constraints.txt.
PINNED_ARCHS = _VOLTA_TO_BLACKWELL


def variant(tag: str) -> Optional[Variant]:
    return next((v for v in VARIANTS if v.tag == tag), None)


def sm(compute_capability: str) -> str:
    """'6.1' -> 'sm_61', '12.0' -> 'sm_120'."""
    major, minor = parse_cc(compute_capability)
    return f"sm_{major}{minor}"


def parse_cc(text: str) -> tuple[int, int]:
    """'6.1', '12.0', 'sm_61', 'sm_120', '(12, 0)' -> (major, minor)."""
    text = text.strip()
    found = re.fullmatch(r"(?:sm_|compute_)?(\d+)(\d)", text)
    if found and "." not in text:
        return int(found.group(1)), int(found.group(2))
    numbers = re.findall(r"\d+", text)
    if len(numbers) < 2:
        raise ValueError(f"not a compute capability: {text!r}")
    return int(numbers[0]), int(numbers[1])


def family(compute_capability: str) -> str:
    major, minor = parse_cc(compute_capability)
    names = {5: "Maxwell", 6: "Pascal", 7: "Turing" if minor >= 5 else "Volta", 8: "Ada" if minor == 9 else "Ampere",
             9: "Hopper", 10: "Blackwell", 11: "Blackwell (Thor)", 12: "Blackwell"}
    return names.get(major, f"compute capability {major}.{minor}")


def build_covers(compute_capability: str, arch_list: list[str] | tuple[str, ...]) -> bool:
    """Does a build with these architectures run on this GPU?

    A cubin sm_XY runs on GPUs of the same major version with minor >= Y (sm_86 runs on an sm_89);
    a PTX compute_XY is JIT-compiled by the driver for any GPU of capability >= X.Y.
    """
    major, minor = parse_cc(compute_capability)
    for arch in arch_list:
        found = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch)
        if not found:
            continue
        a_major, a_minor = int(found.group(2)), int(found.group(3))
        if found.group(1) == "sm" and a_major == major and a_minor <= minor:
            return True
        if found.group(1) == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def needs_ptx_jit(compute_capability: str, arch_list: list[str] | tuple[str, ...]) -> bool:
    """True when only a PTX (compute_XY) entry covers the GPU: the driver must JIT-compile it."""
    cubins = [a for a in arch_list if a.startswith("sm_")]
    return build_covers(compute_capability, arch_list) and not build_covers(compute_capability, cubins)


def pip_install(tag: str, torch_spec: str = TORCH_RANGE) -> str:
    return f"pip install 'torch{torch_spec}' --index-url {INDEX}{tag}"


@dataclass(frozen=True)
class WheelAdvice:
    tag: str
    command: str
    why: str


def wheel_for(compute_capability: Optional[str]) -> WheelAdvice:
    """The torch wheel that has kernels for this GPU within moshi's torch range, and why."""
    if not compute_capability:
        return WheelAdvice("cu128", pip_install("cu128"),
                           "cu128 wheels cover Volta to Blackwell (sm_70-sm_120); a Pascal or older GPU needs cu126")
    major, minor = parse_cc(compute_capability)
    arch, fam = sm(compute_capability), family(compute_capability)
    if major < 7:
        return WheelAdvice(
            "cu126", pip_install("cu126"),
            f"{fam} ({arch}) kernels are only in the cu126 wheels (or cu118 with torch 2.7: "
            f"{pip_install('cu118', '==2.7.1')}); cu128 and newer wheels carry no {arch} kernels, never install "
            "them for this GPU. cu126 is the last variant with these kernels and PyTorch is retiring it: "
            "keep torch<2.10 (moshi's own pin) so the cu126 wheels stay available")
    if major == 7 and minor < 5:
        return WheelAdvice(
            "cu126", pip_install("cu126"),
            f"Volta ({arch}) kernels are in the cu126 wheels and in cu128 only from torch 2.8 "
            f"({pip_install('cu128', '>=2.8,<2.10')}); cu130 dropped Volta")
    if major >= 10:
        return WheelAdvice(
            "cu128", pip_install("cu128"),
            f"{fam} ({arch}) needs wheels built with CUDA 12.8 or newer (cu128, cu129, cu130) and torch >= 2.7; "
            "torch 2.6 and older, and every cu126/cu124/cu118 wheel, have no kernels for it")
    return WheelAdvice("cu128", pip_install("cu128"),
                       f"{fam} ({arch}) is covered by every current wheel; cu128 is the one this project pins")


def blackwell(compute_capability: Optional[str]) -> bool:
    return bool(compute_capability) and parse_cc(compute_capability)[0] >= 10  # type: ignore[arg-type]


def arch_remedy(compute_capability: Optional[str]) -> str:
    advice = wheel_for(compute_capability)
    return f"{advice.command} ({advice.why})"


def parse_cuda_tag(text: str) -> Optional[str]:
    """'2.9.1+cu128' or 'cu126' -> 'cu128' / 'cu126'."""
    found = re.search(r"cu(\d{3})", text)
    return f"cu{found.group(1)}" if found else None
