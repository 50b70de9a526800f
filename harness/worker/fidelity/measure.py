"""The fidelity pass: after the timed frames (never inside them), the candidate against the bf16 eager reference.

One input (the run's own audio, its first `fidelity_frames` frames through the candidate's Mimi, which no
configuration changes: Mimi stays float32), three traces (harness.worker.fidelity.trace):
1. the reference (bf16, unquantized, eager: moshi's torch.compile switched off) greedy on that input;
2. the candidate teacher-forced on the reference's tokens: per stream top-1 agreement and KL, and their drift;
3. the candidate's own greedy free run: token agreement with the reference, the second figure.

Two copies in memory where they fit (the CPU; a GPU with room for another bf16 LM); otherwise the reference's
tokens and logits are recorded first on the host, its model freed, and the candidate rebuilt to replay them
(a 7B on one GPU). The candidate that is itself the reference configuration is the self-test: exactly 0 KL.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from harness.contract.wire import BenchJob, FidelityReading, WorkerRun
from harness.worker.fidelity.compare import compare, finite_frames, greedy_summary
from harness.worker.fidelity.trace import USER_CODEBOOKS, Trace, trace
from harness.worker.flavour import is_nvidia
from harness.worker.pipeline.audio import input_audio

REFERENCE = WorkerRun(name="fidelity-reference", device="cpu", dtype="bfloat16")
SPARE = 1.25  # a second LM needs its bf16 weights and some activations: room for 1.25x their bytes


def is_reference(run: WorkerRun) -> bool:
    """The reference configuration: bf16, unquantized, on one device, eager. CUDA graphs replay the same kernels."""
    return run.dtype == "bfloat16" and run.quantize == "none" and run.offload == "none" and not run.compile


@dataclass
class Candidate:
    """The candidate's models, held here so that the pass can free them for the reference and build them again."""

    built: Optional[object]  # harness.worker.engine.build.BuiltModels
    rebuild: Callable[[], object]


def user_tokens(mimi, audio: torch.Tensor, frames: int, device: torch.device) -> torch.Tensor:  # noqa: ANN001
    """[frames, 8] Mimi tokens of the first `frames` frames of `audio` ([1, 1, samples]), looping it as the run does."""
    frame_size = int(mimi.sample_rate / mimi.frame_rate)
    chunks = max(1, audio.shape[-1] // frame_size)
    codes = []
    with torch.no_grad(), mimi.streaming(1):
        for index in range(frames):
            start = (index % chunks) * frame_size
            codes.append(mimi.encode(audio[:, :, start:start + frame_size].to(device))[0, :USER_CODEBOOKS, 0])
    return torch.stack(codes).cpu()


def _fits_beside(lm, device: torch.device) -> bool:  # noqa: ANN001
    if device.type != "cuda":
        return True  # host memory: the scaled presets and a CPU run of the 7B alike have room for the bf16 copy
    need = sum(p.numel() for p in lm.parameters()) * 2 * SPARE
    free, _ = torch.cuda.mem_get_info(device)
    return free > need


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _reference_trace(job: BenchJob, device: torch.device, user: torch.Tensor) -> Trace:
    from moshi.utils.compile import no_compile

    from harness.worker.engine.build import build_models

    run = WorkerRun(**{**REFERENCE.__dict__, "device": device.type})
    reference = build_models(run, job.preset, _weights(job), job.seed, _scratch(job), serving="model")
    try:
        with no_compile():
            return trace(reference.lm, user)
    finally:
        del reference
        _release(device)


def _weights(job: BenchJob):  # noqa: ANN202
    from pathlib import Path

    return Path(job.weights_path) if job.weights_path else None


def _scratch(job: BenchJob):  # noqa: ANN202
    from pathlib import Path

    return Path(job.scratch_dir) / "fidelity"


def _not_measured(run: WorkerRun) -> str:
    if is_nvidia():
        return "not measured: NVIDIA's fork steps the model its own way; fidelity compares PyPI moshi configurations"
    if run.offload != "none":
        return ("not measured: offloading moves weights, not numbers (the same kernels in the same dtype), and the "
                "whole bf16 reference would not fit where this run had to offload")
    return ""


def measure_fidelity(job: BenchJob, candidate: Candidate, weights: str) -> FidelityReading:
    begun = time.perf_counter()
    synthetic = weights.startswith("synthetic")
    heard = job.input_wav or f"synthetic speech-like signal (seed {job.seed})"
    base = dict(frames=job.fidelity_frames, synthetic=synthetic, input=heard, self_test=is_reference(job.run))
    skipped = _not_measured(job.run)
    if skipped:
        return FidelityReading(**{**base, "frames": 0}, reference="", method="", skipped=skipped)
    built = candidate.built
    device = built.device
    audio = input_audio(job.input_wav, int(built.mimi.sample_rate), 1, job.seed)
    user = user_tokens(built.mimi, audio, job.fidelity_frames, device)
    replayed = not _fits_beside(built.lm, device)
    if replayed and base["self_test"]:
        return FidelityReading(**{**base, "frames": 0}, reference="", method="", skipped=(
            "not measured: this is the reference configuration, and a second copy for its self-test does not fit"))
    if replayed:  # two 7Bs do not fit: free the candidate, record the reference on the host, build it again
        candidate.built = built = None
        _release(device)
    reference = _reference_trace(job, device, user)
    if replayed:
        built = candidate.built = candidate.rebuild()
    forced = trace(built.lm, user, reference.tokens)
    free_run = trace(built.lm, user)
    agreement, first = greedy_summary(reference, free_run)
    method = ("teacher-forced: the candidate reads the reference's tokens every frame; greedy (argmax) decoding; "
              + ("the reference's logits recorded on the host first and replayed (two copies do not fit)" if replayed
                 else "both models in memory"))
    return FidelityReading(
        **base, reference=f"bfloat16, unquantized, eager, same weights and input, on {device.type}",
        method=method, streams=compare(reference, forced, free_run), greedy_agreement=agreement,
        greedy_first_divergence=first, non_finite_frames=int((~finite_frames(forced)).sum()),
        seconds=time.perf_counter() - begun)
