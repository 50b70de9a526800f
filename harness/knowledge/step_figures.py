"""Published PersonaPlex / Moshi step times, each with its source: what the step-time model is calibrated and
validated on.

`split` says what a figure is for: "fit" figures set the model's free parameters (harness.plan.calibrate), and
"validation" figures are predicted with those parameters and never used to fit them, so their error is the
model's honest error. A figure is described by what ran (GPU, mode, weights, serving), since the model predicts a
configuration; `part` names a figure that measures a part of the frame rather than a whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

Split = Literal["fit", "validation"]
Mode = Literal["eager", "graphs", "compile+graphs"]

VLLM_OMNI_6604 = "https://github.com/vllm-project/vllm-omni/pull/6604"
PERSONAPLEX_103 = "https://github.com/NVIDIA/personaplex/pull/103"
SEED_M2_MAX = "../shared/seeds/004 (the user's own notes: PersonaPlexDemo on an M2 Max, MLX)"
SWIFT_M2_MAX = "https://github.com/soniqo/speech-swift/blob/main/docs/models/personaplex.md"
TRTMC_504 = "https://github.com/NVIDIA/TensorRT-Model-Connect/issues/504"


@dataclass(frozen=True)
class StepFigure:
    name: str
    gpu: str  # a name harness.knowledge.gpus knows (or "apple-m2-max", described by `bandwidth_gbs`)
    mode: Mode
    weights: str  # bf16 | int4 (4-bit, group-wise scales)
    serving: str  # model | personaplex-server
    value: float  # the published figure, in `unit`
    split: Split
    source: str
    note: str
    part: Optional[str] = None  # None: a whole frame; "depformer_half": what skipping 8 of 16 depformer steps saved
    bandwidth_gbs: Optional[float] = None  # for a device the GPU table does not hold
    effective_gbs: Optional[tuple[float, float]] = None  # a published achieved bandwidth (low, high), for `eta`
    unit: str = "ms"
    weights_gb: Optional[float] = None  # the weight bytes per frame the source itself counts (profiler)
    framework: str = "PyTorch (moshi)"  # what ran: moshi's own code, NVIDIA's fork, a port, another framework

    @property
    def comparable(self) -> bool:
        """moshi's own PyTorch frame (PyPI moshi or NVIDIA's fork): what the model counts ops and kernels of. A port
        or another framework dispatches other kernels; its error measures that framework as much as the model."""
        return self.framework.startswith("PyTorch (moshi") or self.framework.startswith("PyTorch (NVIDIA")


FIGURES: tuple[StepFigure, ...] = (
    StepFigure("H100 eager (vLLM-Omni port)", "h100", "eager", "bf16", "model", 77.5, "validation", VLLM_OMNI_6604,
               "per-frame model step, eager: launch-bound on the host; the port dispatches its own ops (not moshi's), "
               "so it no longer sets the host cost", framework="PyTorch (vLLM-Omni port)"),
    StepFigure("H100 CUDA graphs (vLLM-Omni port)", "h100", "graphs", "bf16", "model", 30.2, "fit", VLLM_OMNI_6604,
               "the same step captured in CUDA graphs: GPU-bound; sets the per-kernel minimum (at the H100's 1980 "
               "MHz; other GPUs scale by their clock)", framework="PyTorch (vLLM-Omni port)"),
    StepFigure("GB10 weight streaming (nsys)", "dgx-spark", "graphs", "bf16", "personaplex-server", 180.0, "fit",
               PERSONAPLEX_103, "~449 batch-1 GEMVs move ~13 GB per frame at ~170-190 GB/s effective of 273: sets "
               "the achievable fraction of the memory bandwidth", part="bandwidth", effective_gbs=(170.0, 190.0),
               unit="GB/s", weights_gb=13.0, framework="PyTorch (NVIDIA's fork)"),
    StepFigure("GB10 stock bf16 server", "dgx-spark", "graphs", "bf16", "personaplex-server", 101.7, "validation",
               PERSONAPLEX_103, "NVIDIA's server as shipped (CUDA graphs on, second Mimi, Opus): not real time",
               framework="PyTorch (NVIDIA's fork)"),
    StepFigure("GB10 depformer 8 of 16 steps skipped", "dgx-spark", "graphs", "bf16", "personaplex-server", 10.3,
               "validation", PERSONAPLEX_103, "what skipping the second half of the depformer's 16 steps saved",
               part="depformer_half", framework="PyTorch (NVIDIA's fork)"),
    StepFigure("M2 Max MLX 4-bit", "apple-m2-max", "compile+graphs", "int4", "model", 75.0, "validation",
               SEED_M2_MAX, "MLX, not PyTorch: compiled, 4-bit weights, 400 GB/s unified memory",
               bandwidth_gbs=400.0, framework="MLX (PersonaPlexDemo)"),
    StepFigure("M2 Max MLX-Swift 4-bit", "apple-m2-max", "compile+graphs", "int4", "model", 68.0, "validation",
               SWIFT_M2_MAX, "speech-swift (MLX-Swift), both transformers 4-bit (group 64): \"~68ms/step (RTF "
               "0.87)\"; whether the optional compiled temporal path was on is not said", bandwidth_gbs=400.0,
               framework="MLX-Swift (speech-swift)"),
    StepFigure("GB300 official PyTorch eager", "gb300", "eager", "bf16", "model", 47.9, "fit", TRTMC_504,
               "\"Official HF eager complete-task p50: 3,160.70 ms\" for a 66-frame workload (Mimi encode, "
               "temporal/depth, Mimi decode, PCM to the host): 47.9 ms per frame, an upper bound if the task "
               "also stepped a prompt; Grace host. Host-bound (the GPU needs ~30 ms): sets the host cost of one "
               "of moshi's own ops", framework="PyTorch (moshi, official eager)"),
)


def figures(split: Optional[Split] = None) -> list[StepFigure]:
    return [f for f in FIGURES if split is None or f.split == split]
