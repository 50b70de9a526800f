"""The published step figures' records and what the model fits on them (issue 30): provenance on every figure, every
parameter fitted on moshi's own code, the per-kernel time from the depformer figure, GB10's clock."""

from __future__ import annotations

import pytest

from harness.knowledge.gpus import find_gpu
from harness.knowledge.kernel_counts import COUNTS
from harness.knowledge.step_figures import FIGURES, STEP_UNSAID, figures
from harness.plan.calibrate import calibration, calibration_architecture, figure_device, figure_run, predict_figure
from harness.plan.memory import LOOKUP_BLOCKS, block_bytes
from harness.plan.steptime import codebook_glue_kernels, depformer_half_ms

ARCH = calibration_architecture()
MEASURES = {"LM step", "frame", "server frame", "part of a frame", "GEMV bandwidth", STEP_UNSAID}


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f.name)
def test_every_figure_keeps_its_provenance(figure) -> None:  # type: ignore[no-untyped-def]
    assert figure.split in {"fit", "validation"}
    assert figure.source.startswith("https://github.com/") or figure.source.startswith("../shared/seeds/")
    assert figure.framework and figure.measures in MEASURES and figure.weights in {"bf16", "int4"}
    assert figure.mode in {"eager", "graphs", "compile+graphs"} and figure.note
    if figure.quote:  # the value is in the source's own words, or the note gives the source's arithmetic to it
        number = f"{figure.value:g}"
        assert number in figure.quote.replace(",", "") or f"= {number}" in figure.note, figure.name


def test_independent_figures_carry_the_sources_own_words() -> None:
    cal = calibration()
    independent = cal.independent()
    assert independent and all(c.figure.quote for c in independent)
    # a port or another framework is labelled so: its error measures that framework as much as the model
    assert all(not c.figure.comparable for c in independent if "vLLM-Omni" in c.figure.framework
               or c.figure.framework.startswith("MLX"))


def test_every_parameter_is_fitted_on_moshis_own_code() -> None:
    """The vLLM-Omni port launches other kernels than moshi (its depformer and sampling: 3,072 launches per call,
    moshi's depformer alone 5,280), so no parameter comes from it: its two H100 figures are validation only."""
    fit = figures("fit")
    assert fit and all(f.comparable for f in fit)
    assert [f.split for f in FIGURES if "vLLM-Omni" in f.framework] == ["validation", "validation"]
    assert 3 * COUNTS["personaplex"].depformer_layer.kernels == 5280  # 6 layers counted as 2, 16 steps


def test_kernel_time_is_what_the_depformer_half_leaves_over_its_weights() -> None:
    cal = calibration()
    figure = next(f for f in figures("fit") if f.part == "depformer_half")
    spark = find_gpu("dgx-spark")
    assert spark is not None and figure_device(figure).clock_mhz == spark.boost_mhz == 2525 and spark.sms == 48
    run = figure_run(figure)
    weights = sum(block_bytes(b, run) for b in ARCH.blocks
                  if (b.name.startswith("depformer") or b.name == "linears") and b.name not in LOOKUP_BLOCKS)
    weights_ms = 0.5 * weights / (cal.params.eta * spark.bandwidth_gbs * 1e9) * 1e3
    pp, moshi = COUNTS["personaplex"], COUNTS["moshi"]
    glue = (pp.lm_other.kernels - moshi.lm_other.kernels) / 8  # per codebook: the presets differ only in dep_q
    assert codebook_glue_kernels() == pytest.approx(glue) and glue > 0
    kernels = 0.5 * (3 * pp.depformer_layer.kernels + 16 * glue)
    assert cal.params.kernel_us == pytest.approx((figure.value - weights_ms) / kernels * 1e3)
    assert cal.params.kernel_ref_mhz == 2525
    assert predict_figure(figure, cal.params, ARCH) == pytest.approx(figure.value)
    assert depformer_half_ms(ARCH, run, figure_device(figure), cal.params) == pytest.approx(figure.value)
    assert "GB10 depformer" in cal.fitted["kernel_us"] and "2525 MHz" in cal.fitted["kernel_us"]


def test_lm_step_figures_leave_mimi_out() -> None:
    from dataclasses import replace

    cal = calibration()
    port = next(f for f in FIGURES if f.measures == "LM step" and f.mode == "graphs")
    as_frame = replace(port, measures="frame")
    assert predict_figure(port, cal.params, ARCH) < predict_figure(as_frame, cal.params, ARCH)
