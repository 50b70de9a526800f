"""Published PersonaPlex / Moshi step times, each with its source: what the step-time model is calibrated and
validated on.

`split` says what a figure is for: "fit" figures set the model's free parameters (harness.plan.calibrate), and
"validation" figures are predicted with those parameters and never used to fit them, so their error is the
model's honest error. A figure is described by what ran (GPU, mode, weights, serving), since the model predicts a
configuration; `part` names a figure that measures a part of the frame rather than a whole frame. Each keeps its
provenance: the source, the exact words it was read from (`quote`, where the source's text was at hand), the
framework that ran and what the figure measures (`measures`).

Figures looked for and NOT used (no URL with a quote that gives a step time on a named GPU, or no arithmetic from
the source to one): the Moshi paper's and README's "practical overall latency as low as 200ms on an L4 GPU" (an
end-to-end latency, not a step time); MoshiVis (arXiv 2503.15633) "~7ms of latency per inference step ... for a
total of 55ms" (kyutai.org/moshivis: MoshiVis, not Moshi, on an M4 Pro Mac mini, quantisation not stated); the
TensorRT-Model-Connect issue 635 "reference: 1173.154 ms" (frames per request and GPU not stated); vLLM-Omni issue
7389's H20 trace (a tick wall time with the GPU 89% idle, two sessions) and its standalone server's per-tick times
(GPU not stated in the text read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

Split = Literal["fit", "validation"]
Mode = Literal["eager", "graphs", "compile+graphs"]

VLLM_OMNI_6604 = "https://github.com/vllm-project/vllm-omni/pull/6604"
PERSONAPLEX_103 = "https://github.com/NVIDIA/personaplex/pull/103"
VLLM_OMNI_7389 = "https://github.com/vllm-project/vllm-omni/issues/7389"
SEED_M2_MAX = "../shared/seeds/004 (the user's own notes: PersonaPlexDemo on an M2 Max, MLX)"
SWIFT_M2_MAX = "https://github.com/soniqo/speech-swift/blob/main/docs/models/personaplex.md"
TRTMC_504 = "https://github.com/NVIDIA/TensorRT-Model-Connect/issues/504"
STEP_UNSAID = "step (with Mimi or without: not said)"  # predicted with Mimi, as a frame


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
    # what the number times: "LM step" (no Mimi), "frame" (Mimi + LM), "server frame" (+ the server's Opus and tail)
    measures: str = "frame"
    quote: str = ""  # the source's own words the value was read from ("" where its text was not at hand)

    @property
    def comparable(self) -> bool:
        """moshi's own PyTorch frame (PyPI moshi or NVIDIA's fork): what the model counts ops and kernels of. A port
        or another framework dispatches other kernels; its error measures that framework as much as the model."""
        return self.framework.startswith("PyTorch (moshi") or self.framework.startswith("PyTorch (NVIDIA")


FIGURES: tuple[StepFigure, ...] = (
    StepFigure("H100 eager (vLLM-Omni port)", "h100", "eager", "bf16", "model", 77.5, "validation", VLLM_OMNI_6604,
               "per-frame model step, eager: launch-bound on the host; the port dispatches its own ops (not moshi's), "
               "so it sets no parameter", framework="PyTorch (vLLM-Omni port)", measures="LM step",
               quote="The per-frame model step alone measures 77.5 ms of the 80 ms budget"),
    StepFigure("H100 CUDA graphs (vLLM-Omni port)", "h100", "graphs", "bf16", "model", 30.2, "validation",
               VLLM_OMNI_6604,
               "the same step with the temporal transformer and the depformer captured in CUDA graphs. No longer a fit "
               "figure: the port launches its own kernels, not moshi's (its depformer and sampling: 3,072 launches "
               "per call, " + VLLM_OMNI_7389 + "), so its time over moshi's kernel count is not moshi's per-kernel "
               "time", framework="PyTorch (vLLM-Omni port)", measures="LM step",
               quote="The per-frame step drops to 30.2 ms (2.6x)"),
    StepFigure("GB10 weight streaming (nsys)", "dgx-spark", "graphs", "bf16", "personaplex-server", 180.0, "fit",
               PERSONAPLEX_103, "~449 batch-1 GEMVs move ~13 GB per frame at ~170-190 GB/s effective of 273: sets "
               "the achievable fraction of the memory bandwidth", part="bandwidth", effective_gbs=(170.0, 190.0),
               unit="GB/s", weights_gb=13.0, framework="PyTorch (NVIDIA's fork)", measures="GEMV bandwidth"),
    StepFigure("GB10 stock bf16 server", "dgx-spark", "graphs", "bf16", "personaplex-server", 101.7, "validation",
               PERSONAPLEX_103, "NVIDIA's server as shipped (CUDA graphs on, second Mimi, Opus): not real time",
               framework="PyTorch (NVIDIA's fork)", measures="server frame"),
    StepFigure("GB10 depformer 8 of 16 steps skipped", "dgx-spark", "graphs", "bf16", "personaplex-server", 10.3,
               "fit", PERSONAPLEX_103, "what skipping the second half of the depformer's 16 steps saved, CUDA graphs "
               "on: half the depformer's weights and kernels of moshi's own code, both counted exactly here. Sets "
               "the per-kernel time (what those 2,640 kernels cost beyond their weights, at GB10's 2525 MHz; other "
               "GPUs scale it by their clock). Was a validation figure sharing its source with the bandwidth figure",
               part="depformer_half", framework="PyTorch (NVIDIA's fork)", measures="part of a frame"),
    StepFigure("M2 Max MLX 4-bit", "apple-m2-max", "compile+graphs", "int4", "model", 75.0, "validation",
               SEED_M2_MAX, "MLX, not PyTorch: compiled, 4-bit weights, 400 GB/s unified memory",
               bandwidth_gbs=400.0, framework="MLX (PersonaPlexDemo)", measures=STEP_UNSAID,
               quote="| ms/step | ~75ms |"),
    StepFigure("M2 Max MLX-Swift 4-bit", "apple-m2-max", "compile+graphs", "int4", "model", 68.0, "validation",
               SWIFT_M2_MAX, "speech-swift (MLX-Swift), both transformers 4-bit (group 64); whether the optional "
               "compiled temporal path was on is not said", bandwidth_gbs=400.0,
               framework="MLX-Swift (speech-swift)", measures=STEP_UNSAID, quote="~68ms/step (RTF 0.87)"),
    StepFigure("GB300 official PyTorch eager", "gb300", "eager", "bf16", "model", 47.9, "fit", TRTMC_504,
               "a 66-frame workload (Mimi encode, temporal/depth, Mimi decode, PCM to the host): 3,160.70 / 66 = "
               "47.9 ms per frame, an upper bound if the task also stepped a prompt; Grace host. Host-bound (the GPU "
               "needs ~30 ms): sets the host cost of one of moshi's own ops",
               framework="PyTorch (moshi, official eager)", measures="frame",
               quote="Official HF eager complete-task p50: **3,160.70 ms**"),
)


def figures(split: Optional[Split] = None) -> list[StepFigure]:
    return [f for f in FIGURES if split is None or f.split == split]
