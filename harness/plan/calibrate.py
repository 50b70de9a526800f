"""Fit the step-time model's three free parameters on published figures; predict the held-out ones (pure).

The "fit" figures of harness.knowledge.step_figures set, in order: the achievable fraction of the memory bandwidth
(GB10's published effective bandwidth), the per-kernel time at GB10's clock (what skipping 8 of the depformer's 16
steps saved with CUDA graphs on, in NVIDIA's fork of moshi: half the depformer's weights and kernels, both counted
exactly, so what the bandwidth does not explain is kernels; other GPUs scale it by their boost clock), the host
cost of one of moshi's own ops (GB300, moshi's official eager frame: host-bound). Every parameter is fitted on
moshi's own code: the vLLM-Omni port's H100 figures are validation only, because the port launches other kernels
than moshi (vllm-omni issue 7389 counts 3,072 launches for its depformer and sampling; moshi's depformer alone runs
5,280), so its time divided by moshi's kernel count is not moshi's per-kernel time. The "validation" figures are
then predicted and compared. A validation figure is *independent* when it shares no source with a fit figure;
only those measure the model's honest error (`median_abs_error`), and `coverage` says how often the band held
them. Everything here is arithmetic on committed tables: deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from statistics import median
from typing import Optional

from harness.contract.wire import ArchitectureFacts, BlockFacts, KVFacts
from harness.knowledge.gpus import find_gpu
from harness.knowledge.kernel_counts import CALIBRATION_ARCHITECTURE
from harness.knowledge.step_figures import StepFigure, figures
from harness.plan.memory import LOOKUP_BLOCKS, block_bytes
from harness.plan.quantized import INT4_GROUP64, bytes_read
from harness.plan.steptime import Device_, Params, depformer_half_ms, frame_work, step_ms, step_parts
from harness.records.config import Device, DType, Offload, Quantize, RunConfig, Serving

# The band: each parameter's range around its fitted value (low = favourable, high = unfavourable).
ETA_RANGE = (0.55, 0.80)  # GB10's 170-190 GB/s of 273 widened: HBM and GDDR cards reach other fractions
KERNEL_RANGE = (0.75, 1.35)  # the minimum differs by generation and clock (larger on older, smaller GPUs)
BAND_CLAIM = 0.8  # the band is meant to hold the truth about 4 times in 5
GOAL_MEDIAN = 0.25  # issue 30's goal: median absolute error on independent figures


def structure_factor(arch: ArchitectureFacts) -> tuple[float, str]:
    """How far the model's own accounting can be off, from a fit figure that counts what we count: the GB10
    profile reports the weight bytes its GEMVs moved per frame; the ratio to the weight bytes we count for the same
    model widens the band both ways (what a frame really reads, and in how many kernels, is known only this well).
    Read against moshi's code the ratio is an upper bound: a frame runs 545 matmuls (32 temporal layers x 4, 16
    depformer steps x 6 layers x 4 with each step's own weights, 16 input projections, 16 heads, the text head), every
    weight read once, while the profile names ~449 GEMVs, so its 13 GB may leave out the matmuls run by other kernels."""
    figure = next(f for f in figures("fit") if f.weights_gb)
    ours = sum(block_bytes(b, figure_run(figure)) for b in arch.blocks if b.name not in LOOKUP_BLOCKS) / 1e9
    ratio = ours / figure.weights_gb  # type: ignore[operator]
    return max(ratio, 1 / ratio), (f"{figure.name}: the profile counts {figure.weights_gb:g} GB of weights per frame, "
                                   f"the model {ours:.1f} GB")


def calibration_architecture() -> ArchitectureFacts:
    data = dict(CALIBRATION_ARCHITECTURE)
    return ArchitectureFacts(**{**data, "blocks": [BlockFacts(**b) for b in data["blocks"]],
                                "kv": [KVFacts(**k) for k in data["kv"]]})


def figure_run(figure: StepFigure) -> RunConfig:
    return RunConfig(name=figure.name, device=Device.cuda, dtype=DType.bfloat16, quantize=Quantize.none,
                     offload=Offload.none, offload_fraction=0.5, compile=figure.mode.startswith("compile"),
                     cuda_graphs=figure.mode != "eager", serving=Serving(figure.serving))


def figure_device(figure: StepFigure) -> Device_:
    spec = find_gpu(figure.gpu)
    bandwidth = figure.bandwidth_gbs or (spec.bandwidth_gbs if spec else 0.0)
    return Device_(bandwidth_gbs=bandwidth, link_gbs=spec.host_link_gbs if spec else 25.0,
                   clock_mhz=spec.boost_mhz if spec else None)


def predict_figure(figure: StepFigure, params: Params, arch: ArchitectureFacts) -> float:
    run, device = figure_run(figure), figure_device(figure)
    if figure.part == "depformer_half":
        return depformer_half_ms(arch, run, device, params)
    work = frame_work(arch, run, lm_only=_lm_only(figure))
    if figure.weights == "int4":
        from dataclasses import replace

        work = replace(work, bytes_local=bytes_read(arch, run, INT4_GROUP64))
    return step_ms(step_parts(work, figure.mode, device, params))


@dataclass(frozen=True)
class FigureCheck:
    figure: StepFigure
    predicted: float
    low: float
    high: float

    @property
    def error(self) -> float:
        return self.predicted / self.figure.value - 1

    @property
    def inside(self) -> bool:
        return self.low <= self.figure.value <= self.high

    shares_source: bool = False  # a fit figure comes from the same source: not an independent test


@dataclass(frozen=True)
class Calibration:
    params: Params
    low: Params
    high: Params
    checks: list[FigureCheck]
    fitted: dict[str, str]  # parameter -> the figure that set it
    structure: float = 1.0  # the band's widening for the model's own accounting (structure_factor)

    def validation(self) -> list[FigureCheck]:
        return [c for c in self.checks if c.figure.split == "validation"]

    def independent(self) -> list[FigureCheck]:
        """Validation figures that share no source with a fit figure: the honest test."""
        return [c for c in self.validation() if not c.shares_source]

    @property
    def median_abs_error(self) -> Optional[float]:
        errors = [abs(c.error) for c in self.independent()]
        return median(errors) if errors else None

    @property
    def median_abs_error_all(self) -> Optional[float]:
        errors = [abs(c.error) for c in self.validation()]
        return median(errors) if errors else None

    @property
    def coverage(self) -> tuple[int, int]:
        v = self.independent()
        return sum(c.inside for c in v), len(v)


def _fit(arch: ArchitectureFacts) -> tuple[Params, dict[str, str]]:
    fit = figures("fit")
    bandwidth_figure = next(f for f in fit if f.effective_gbs)
    low, high = bandwidth_figure.effective_gbs  # type: ignore[misc]
    eta = (low + high) / 2 / figure_device(bandwidth_figure).bandwidth_gbs
    kernel_figure = next(f for f in fit if f.part == "depformer_half")
    # The depformer's half: its weights at the fitted bandwidth + its kernels x k (GPU-bound, graphed), so k is what
    # the weights leave over, per kernel, at that GPU's clock (linear in k: two evaluations give it exactly).
    run, device = figure_run(kernel_figure), figure_device(kernel_figure)
    weights_ms = depformer_half_ms(arch, run, device, Params(eta=eta, kernel_us=0.0, host_op_us=0.0))
    per_us_ms = depformer_half_ms(arch, run, device, Params(eta=eta, kernel_us=1.0, host_op_us=0.0)) - weights_ms
    if kernel_figure.value <= weights_ms:
        raise ValueError(f"{kernel_figure.name}: its weights alone take {weights_ms:.1f} ms at the fitted bandwidth")
    kernel_us = (kernel_figure.value - weights_ms) / per_us_ms
    ref_mhz = device.clock_mhz
    # Eager: step = host ops x c (host-bound), so c is the step over the ops the host dispatched.
    eager = next(f for f in fit if f.mode == "eager" and not f.part)
    parts = step_parts(frame_work(arch, figure_run(eager), lm_only=_lm_only(eager)), "eager", figure_device(eager),
                       Params(eta=eta, kernel_us=kernel_us, host_op_us=1.0, kernel_ref_mhz=ref_mhz))
    host_op_us = eager.value / parts.host_ms  # host_ms at 1 us per op is ops / 1000
    if parts.gpu_ms > eager.value:
        raise ValueError(f"{eager.name}: the fitted GPU time {parts.gpu_ms:.1f} ms exceeds the eager figure")
    kernels = round(per_us_ms * 1e3)
    return Params(eta=eta, kernel_us=kernel_us, host_op_us=host_op_us, kernel_ref_mhz=ref_mhz), {
        "eta": f"{bandwidth_figure.name} ({low:g}-{high:g} GB/s effective)",
        "kernel_us": (f"{kernel_figure.name}: {kernel_figure.value:g} ms less {weights_ms:.1f} ms of weights over "
                      f"{kernels} kernels"
                      + (f", at {ref_mhz:g} MHz; other GPUs scale by their boost clock" if ref_mhz else "")),
        "host_op_us": f"{eager.name}: {parts.host_ops} of moshi's ops in {eager.value:g} ms"}


def _lm_only(figure: StepFigure) -> bool:
    return figure.measures == "LM step"  # vLLM-Omni's "model step" is the LM alone (Mimi is another stage)


def band_params(params: Params, host_low: float = 0.8, host_high: float = 1.25) -> tuple[Params, Params]:
    return (Params(eta=ETA_RANGE[1], kernel_us=params.kernel_us * KERNEL_RANGE[0],
                   host_op_us=params.host_op_us * host_low, kernel_ref_mhz=params.kernel_ref_mhz),
            Params(eta=ETA_RANGE[0], kernel_us=params.kernel_us * KERNEL_RANGE[1],
                   host_op_us=params.host_op_us * host_high, kernel_ref_mhz=params.kernel_ref_mhz))


@lru_cache(maxsize=1)
def calibration() -> Calibration:
    arch = calibration_architecture()
    params, fitted = _fit(arch)
    low, high = band_params(params)
    structure, why = structure_factor(arch)
    fitted["structure"] = why
    checks = []
    fit_sources = {f.source for f in figures("fit")}
    for figure in figures():
        shares = figure.split == "validation" and figure.source in fit_sources
        if figure.part == "bandwidth":
            eff = params.eta * figure_device(figure).bandwidth_gbs
            checks.append(FigureCheck(figure, eff, ETA_RANGE[0] * figure_device(figure).bandwidth_gbs,
                                      ETA_RANGE[1] * figure_device(figure).bandwidth_gbs, shares_source=shares))
            continue
        checks.append(FigureCheck(figure, predict_figure(figure, params, arch),
                                  predict_figure(figure, low, arch) / structure,
                                  predict_figure(figure, high, arch) * structure, shares_source=shares))
    return Calibration(params=params, low=low, high=high, checks=checks, fitted=fitted, structure=structure)
