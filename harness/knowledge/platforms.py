"""Platforms users really run PersonaPlex on, and their known hazards: each with what goes wrong, the fix and the
public thread it comes from. The probe (WSL, unified memory), `harness plan` (the target's notes) and
`harness diagnose` (the signatures' causes and remedies) read them from here, so all three say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

WSL_GRAPHS_FIXED = (2, 7, 0)  # the WSL release whose dxgkrnl captures CUDA graphs on Blackwell (microsoft/WSL#14452)


@dataclass(frozen=True)
class Hazard:
    key: str
    what: str
    fix: str
    source: str


WSL_BLACKWELL_GRAPHS = Hazard(
    "wsl-blackwell-graphs",
    "WSL2 before 2.7.0 with a Blackwell GPU (sm_120): CUDA graph capture crashes with cudaErrorUnknown (the "
    "dxgkrnl GPU virtualisation layer); moshi and NVIDIA's server capture graphs by default",
    "in PowerShell `wsl --update --pre-release` (or `wsl --update` once 2.7 is stable) then `wsl --shutdown`; mask "
    "nvidia-cdi-refresh inside the distro (ln -sf /dev/null /etc/systemd/system/nvidia-cdi-refresh.service and "
    ".path); until then run with `cuda_graphs: off` (NO_CUDA_GRAPH=1), which costs the graphs' speed-up",
    "https://github.com/microsoft/WSL/issues/14452; https://github.com/vllm-project/vllm/issues/37242")
WSL_FP8 = Hazard(
    "wsl-blackwell-fp8",
    "WSL2 (2.6.3, 2.7.x) does not expose Blackwell's FP8 tensor cores: fp8 runs fall back to slower paths",
    "plan fp8 on native Linux; under WSL2 prefer int8 or bf16",
    "https://github.com/microsoft/WSL/issues/40333")
WSL_AUDIO = Hazard(
    "wsl-audio",
    "WSLg's audio path adds 30-50 ms of latency to a local browser conversation",
    "serve from WSL2 to a browser on Windows over the network (https://<WSL2 IP>:8998) or deploy on native Linux",
    "../shared/seeds/003 (the user's RTX 5090 under WSL2 on Windows 11)")
UNIFIED_MEMORY = Hazard(
    "unified-memory",
    "one memory pool for CPU and GPU (DGX Spark / GB10, Jetson Thor/Orin): the GPU's and the host's use add up, "
    "CPU offload frees nothing, and weight streaming is bound by LPDDR5X (273 GB/s): NVIDIA's server as shipped "
    "takes 101.7 ms per frame on GB10 (not real time; choppy audio)",
    "bf16 without offload, CUDA graphs on, and fewer bytes per frame (int8 / nf4 weights, or PR 103's depformer "
    "changes); on Jetson Thor install PyTorch from https://pypi.jetson-ai-lab.io/sbsa/cu130 (the stock wheel's "
    "audio is choppy there)",
    "https://github.com/NVIDIA/personaplex/pull/103; https://github.com/NVIDIA/personaplex/issues/3; "
    "https://github.com/NVIDIA/personaplex/issues/96")
OLD_TORCH_COMPILE = Hazard(
    "old-torch-compile",
    "NVIDIA's fork pins torch < 2.5; on some datacenter GPUs (the H20 reported) that torch crashes in the compiled "
    "and CUDA-graphed generation path",
    "set NO_TORCH_COMPILE=1 and NO_CUDA_GRAPH=1 for NVIDIA's server on that torch (what PR 84 does for the H20), or "
    "run the model with a current torch (the harness's pinned 2.9.1 with PyPI moshi)",
    "https://github.com/NVIDIA/personaplex/pull/84 (closes issue 51)")
MULTI_GPU_GRAPHS = Hazard(
    "multi-gpu-graphs",
    "a model split across GPUs (device_map / accelerate, or layers on two devices) cannot be captured in one CUDA "
    "graph: graphs turn off (or capture fails) and every frame pays eager dispatch",
    "keep one PersonaPlex process per GPU (it fits in 24 GB with int8, 19 GB in bf16) and scale by processes; "
    "if a split is unavoidable plan it as eager",
    "https://github.com/ikawrakow/ik_llama.cpp/pull/1040; tests/data/diagnosis/066-pytorch-87794-capture-two-gpus.md")
EMPTY_TEXT_PROMPT = Hazard(
    "empty-text-prompt",
    "NVIDIA's server fails a call whose persona text (text_prompt) is empty: it keeps None for the persona's tokens "
    "and its prefill iterates them (TypeError: 'NoneType' object is not iterable in _step_text_prompt_core); the "
    "socket closes before the handshake (1006)",
    "always send a persona text (`harness serve` and `harness endpoint` send a default one)",
    "NVIDIA/personaplex moshi/models/lm.py _step_text_prompt_core at 3428dfd (issue 20's endpoint run, this project)")
SHORT_VOICE_PROMPT = Hazard(
    "short-voice-prompt",
    "NVIDIA's server normalises a .wav voice prompt's loudness with pyloudnorm, whose 400 ms blocks fail on a shorter "
    "prompt (ValueError: Audio must have length greater than the block size)",
    "give a voice prompt of at least 400 ms (6 frames of 80 ms: `harness endpoint --voice-frames 6` or more), or a "
    "voice embedding (.pt) instead of a .wav",
    "NVIDIA/personaplex moshi/models/lm.py normalize_audio; https://github.com/csteinmetz1/pyloudnorm/issues/5")

HAZARDS = (WSL_BLACKWELL_GRAPHS, WSL_FP8, WSL_AUDIO, UNIFIED_MEMORY, OLD_TORCH_COMPILE, MULTI_GPU_GRAPHS,
           EMPTY_TEXT_PROMPT, SHORT_VOICE_PROMPT)


def parse_version(text: Optional[str]) -> Optional[tuple[int, ...]]:
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g or 0) for g in found.groups()) if found else None


def blackwell(cc: Optional[str]) -> bool:
    return bool(cc) and cc.split(".")[0] in {"10", "11", "12"}  # type: ignore[union-attr]


def wsl_hazards(wsl_version: Optional[str], cc: Optional[str]) -> list[Hazard]:
    """The WSL hazards that apply: graphs on Blackwell before 2.7.0 (or an unknown WSL release), FP8, audio."""
    out = []
    if blackwell(cc):
        version = parse_version(wsl_version)
        if version is None or version < WSL_GRAPHS_FIXED:
            out.append(WSL_BLACKWELL_GRAPHS)
        out.append(WSL_FP8)
    out.append(WSL_AUDIO)
    return out


def target_hazards(*, os: str, memory_kind: str, cc: Optional[str], wsl_version: Optional[str] = None) -> list[Hazard]:
    """What `harness plan` warns about for a target."""
    out: list[Hazard] = []
    if os == "wsl":
        out += wsl_hazards(wsl_version, cc)
    if memory_kind == "unified":
        out.append(UNIFIED_MEMORY)
    return out
