"""The step-time model's arithmetic and its calibration: deterministic, on the committed tables (no torch)."""

from __future__ import annotations

from dataclasses import replace
from statistics import median

import pytest

from harness.contract.wire import CpuStages
from harness.knowledge.gpus import find_gpu
from harness.knowledge.kernel_counts import COUNTS
from harness.knowledge.step_figures import figures
from harness.plan.calibrate import calibration, calibration_architecture, predict_figure
from harness.plan.cpu_step import cpu_step_parts, fit_cpu
from harness.plan.memory import mimi_bytes
from harness.plan.predict import predict_step, serving_prediction
from harness.plan.quantized import SCHEMES, supported, weight_bytes
from harness.plan.steptime import Device_, FrameWork, Params, frame_work, scaled, step_ms, step_parts
from harness.plan.target import PlanTarget, from_spec
from harness.records.config import Device, DType, Offload, Quantize, RunConfig, Serving

ARCH = calibration_architecture()


def _run(**changes: object) -> RunConfig:
    base = dict(name="r", device=Device.cuda, dtype=DType.bfloat16, quantize=Quantize.none, offload=Offload.none,
                offload_fraction=0.5, compile=False, cuda_graphs=False, serving=Serving.model)
    return RunConfig(**{**base, **changes})


def _work(**changes: int) -> FrameWork:
    base = dict(ops=10_000, kernels=6_000, graphed_ops=9_000, graph_calls=6, compiled_kernels=4_000,
                compiled_ops_saved=2_000, lm_flops=0, mimi_flops=0, bytes_local=10**10, bytes_moved=0)
    return FrameWork(**{**base, **changes})


def test_counts_scale_by_depth_from_the_counted_preset() -> None:
    counts = COUNTS["personaplex"]
    c = scaled(ARCH, counts)  # 32 temporal and 6 depformer layers from a count of 2 and 2
    expected = (counts.mimi.kernels + counts.lm_other.kernels + 16 * counts.temporal_layer.kernels
                + 3 * counts.depformer_layer.kernels)
    assert c.kernels == expected
    assert c.kernels > 5_000  # "thousands of small kernels per frame"
    assert c.graphed_ops <= c.ops and c.compiled_kernels < c.kernels


def test_eager_overlaps_host_and_gpu_graphs_leave_the_gpu() -> None:
    device = Device_(bandwidth_gbs=1000.0)
    params = Params(eta=0.5, kernel_us=2.0, host_op_us=5.0)
    eager = step_parts(_work(), "eager", device, params)
    assert eager.bandwidth_ms == pytest.approx(20.0) and eager.kernel_ms == pytest.approx(12.0)
    assert eager.gpu_ms == pytest.approx(32.0) and eager.host_ms == pytest.approx(50.0)
    assert step_ms(eager) == pytest.approx(50.0)  # host-bound: the slower wins
    graphs = step_parts(_work(), "graphs", device, params)
    assert graphs.host_ops == 10_000 - 9_000 + 3 * 6 and step_ms(graphs) == pytest.approx(32.0)
    compiled = step_parts(_work(), "compile", device, params)
    assert compiled.kernels == 4_000 and compiled.host_ops == 8_000 and step_ms(compiled) == pytest.approx(40.0)
    offloaded = step_parts(_work(bytes_moved=25 * 10**9), "graphs", Device_(1000.0, link_gbs=25.0), params)
    assert offloaded.link_ms == pytest.approx(1000.0) and offloaded.host_ops == 10_000  # no graphs with offload


def test_a_cpu_step_is_fitted_on_its_timed_frame() -> None:
    """The CPU model: Mimi as timed (twice for NVIDIA's server frame), the LM's ops at the timed cost per op, and the
    LM's bytes or FLOPs (the larger) on top; a timing of a preset the counts do not hold fits nothing."""
    stages = CpuStages(preset="moshi-tiny", frames=5, mimi_ms=90.0, lm_ms=20.0, threads=2)
    fit = fit_cpu(stages)
    assert fit is not None
    moshi = COUNTS["moshi"]
    assert fit.lm_ops == moshi.lm_other.ops + moshi.temporal_layer.ops + moshi.depformer_layer.ops
    assert fit.lm_op_us == pytest.approx(20.0 / fit.lm_ops * 1e3)
    assert fit_cpu(CpuStages(preset="personaplex-7b", frames=5, mimi_ms=1.0, lm_ms=1.0, threads=1)) is None
    assert fit_cpu(None) is None

    arch = ARCH  # personaplex-7b: its LM streams gigabytes per frame
    run = _run(device=Device.cpu, dtype=DType.float32)
    work = frame_work(arch, run)
    mimi_ops = COUNTS["personaplex"].mimi.ops
    parts = cpu_step_parts(work, arch, run, fit, bandwidth_gbs=10.0, matmul_gflops={"float32": 100.0})
    lm_bytes = work.bytes_local - mimi_bytes(arch)
    assert parts.measured_ms == pytest.approx(90.0) and parts.host_ops == work.ops - mimi_ops
    assert parts.host_ms == pytest.approx((work.ops - mimi_ops) * fit.lm_op_us / 1e3)
    assert parts.bandwidth_ms == pytest.approx(lm_bytes / 10e9 * 1e3)
    assert parts.compute_ms == pytest.approx(work.lm_flops / 100e9 * 1e3)
    assert step_ms(parts) == pytest.approx(90.0 + parts.host_ms + max(parts.bandwidth_ms, parts.compute_ms))
    server = _run(device=Device.cpu, dtype=DType.float32, serving=Serving.personaplex_server)
    two = cpu_step_parts(frame_work(arch, server), arch, server, fit, bandwidth_gbs=10.0,
                         matmul_gflops={"float32": 100.0})
    assert two.measured_ms == pytest.approx(180.0) and two.host_ops == parts.host_ops  # a second Mimi, same LM

    here = PlanTarget(label="cpu", host_bandwidth_gbs=10.0, cpu_matmul_gflops={"float32": 100.0}, cpu_stages=stages)
    step = predict_step(arch, run, here)
    assert step is not None and step.band.low < step.band.p50 < step.band.high
    assert step.band.p50 == pytest.approx(step_ms(parts)) and step.realtime == "no"
    assert predict_step(arch, run, PlanTarget(label="cpu", host_bandwidth_gbs=10.0)) is None  # nothing timed


def test_calibration_reproduces_its_fit_figures_and_reports_the_held_out_ones() -> None:
    cal = calibration()
    assert 0.55 < cal.params.eta < 0.8 and 1.0 < cal.params.kernel_us < 5.0 and 2.0 < cal.params.host_op_us < 10.0
    for check in cal.checks:
        assert check.low <= check.predicted <= check.high
        if check.figure.split == "fit":
            assert check.error == pytest.approx(0.0, abs=1e-9), check.figure.name
    validation = cal.validation()
    assert len(validation) == len(figures("validation")) >= 3
    assert cal.median_abs_error_all == pytest.approx(median(abs(c.error) for c in validation))
    # Independent: no source shared with a fit figure (the vLLM-Omni eager and GB10's server share theirs).
    fit_sources = {f.source for f in figures("fit")}
    independent = [c for c in validation if c.figure.source not in fit_sources]
    assert cal.independent() == independent and independent
    assert all(c.shares_source for c in validation if c not in independent)
    assert cal.median_abs_error == pytest.approx(median(abs(c.error) for c in independent))
    inside, n = cal.coverage
    assert n == len(independent) and inside == sum(c.low <= c.figure.value <= c.high for c in independent)
    assert cal.structure >= 1.0
    assert calibration() is cal  # computed once


def test_graphs_beat_eager_on_an_h100_and_every_figure_is_predicted_deterministically() -> None:
    cal = calibration()
    eager = next(f for f in figures("fit") if f.mode == "eager")
    assert predict_figure(eager, cal.params, ARCH) == pytest.approx(eager.value)
    h100 = from_spec(find_gpu("h100"), None)  # type: ignore[arg-type]
    graphs = predict_step(ARCH, _run(cuda_graphs=True), h100)
    eager_step = predict_step(ARCH, _run(), h100)
    assert graphs is not None and eager_step is not None
    assert graphs.band.p50 < eager_step.band.p50
    assert eager_step.parts.host_ms > eager_step.parts.gpu_ms  # eager on an H100: launch-bound
    assert graphs.band.low < graphs.band.p50 < graphs.band.high
    assert predict_step(ARCH, _run(device=Device.cpu), h100) is None  # a CPU that was not measured


def test_verdict_sessions_processes_and_cost() -> None:
    h100 = from_spec(find_gpu("h100"), None)  # type: ignore[arg-type]
    run = _run(cuda_graphs=True)
    one = predict_step(ARCH, run, h100)
    assert one is not None and one.realtime in {"yes", "uncertain"}
    slow = PlanTarget(**{**h100.__dict__, "bandwidth_gbs": 50.0})
    assert predict_step(ARCH, run, slow).realtime == "no"  # type: ignore[union-attr]
    from harness.knowledge.prices import Price

    serving = serving_prediction(ARCH, run, h100, deadline_ms=80.0, device_peak_bytes=20 * 2**30,
                                 memory_sessions=10, price=Price(2.0, "test"), memory_headroom=0.10)
    assert serving is not None
    # 81559 MiB as the H100 reports it, 10% kept free (the measured run's rule): 71.7 GiB // 20 GiB = 3
    assert serving.processes_by_memory == 3
    for headroom, expected in ((0.0, 4), (0.10, 3)):  # 79.6 GiB // 19 = 4; 71.7 GiB // 19 = 3
        by = serving_prediction(ARCH, run, h100, deadline_ms=80.0, device_peak_bytes=19 * 2**30,
                                memory_sessions=10, price=None, memory_headroom=headroom)
        assert by is not None and by.processes_by_memory == expected
    assert serving.processes_by_time == int(80 // (one.band.high * one.parts.gpu_ms / one.band.p50))
    assert 1 <= serving.lockstep_sessions <= 10
    assert serving.usd_per_conversation_hour(4) == pytest.approx(0.5)


def test_quantized_weights_shrink_the_weights_and_need_their_kernels() -> None:
    run = _run()
    bf16 = weight_bytes(ARCH, run, 2.0)
    nf4 = weight_bytes(ARCH, run, next(s for s in SCHEMES if s.name == "nf4").weight_bytes)
    assert nf4 < 0.4 * bf16
    fp8 = next(s for s in SCHEMES if s.name == "fp8")
    assert supported(fp8, "6.1")[0] is False and "8.9" in supported(fp8, "6.1")[1]
    assert supported(fp8, "9.0")[0] is True


def test_server_frame_adds_a_second_mimi() -> None:
    model = frame_work(ARCH, _run())
    server = frame_work(ARCH, _run(serving=Serving.personaplex_server))
    assert server.kernels - model.kernels == COUNTS["personaplex"].mimi.kernels
    assert server.mimi_flops == 2 * model.mimi_flops
    assert replace(model, ops=1).ops == 1
