"""The verdict's fidelity rule (harness.verdict.fidelity): a fast run that no longer says what bf16 says is not
recommended; a faithful one is; an unmeasured one is judged on its timing alone, and the deploy text says so."""

from __future__ import annotations

from harness.contract.wire import FidelityReading, StreamFidelity
from harness.records.fidelity import FidelityCriteria
from harness.records.scenario import Criteria
from harness.verdict.fidelity import SYNTHETIC_LABEL, fidelity_note, fidelity_problem
from harness.verdict.recommend import decide
from tests.unit.test_verdict import _run, _session


def _reading(kl: float, top1: float, greedy: float, synthetic: bool = True, self_test: bool = False,
             skipped: str = "") -> FidelityReading:
    streams = [] if skipped else [
        StreamFidelity(stream=name, codebooks=rows, top1_agreement=top1, kl_mean=kl, kl_p99=2 * kl, kl_max=3 * kl,
                       kl_by_frame=[kl] * 6, greedy_agreement=greedy) for name, rows in
        (("text", 1), ("semantic", 1), ("acoustic", 7))]
    return FidelityReading(frames=0 if skipped else 6, reference="bfloat16, unquantized, eager", method="teacher-forced",
                           self_test=self_test, synthetic=synthetic, input="synthetic", streams=streams,
                           greedy_agreement=greedy, skipped=skipped)


def _fast(name: str, reading: FidelityReading | None, **config):  # noqa: ANN003, ANN202
    run = _run(name, [30.0 + (i % 7) for i in range(4606)], **config)  # certifies (test_verdict)
    run.metrics.fidelity = reading
    return run


def test_faithful_passes_and_each_figure_can_fail() -> None:
    c = FidelityCriteria()
    assert fidelity_problem(_fast("ok", _reading(0.01, 0.97, 0.9), quantize="int8"), c) is None
    kl = fidelity_problem(_fast("kl", _reading(0.5, 0.97, 0.9), quantize="nf4"), c)
    assert kl is not None and kl.startswith("NOT FAITHFUL") and "mean KL 0.5 nats > 0.1" in kl and SYNTHETIC_LABEL in kl
    top1 = fidelity_problem(_fast("top1", _reading(0.01, 0.80, 0.9), quantize="nf4"), c)
    assert top1 is not None and "top-1 agreement 80.0% < 90%" in top1
    greedy = fidelity_problem(_fast("greedy", _reading(0.01, 0.97, 0.5), quantize="nf4"), c)
    assert greedy is not None and "greedy token agreement 50.0% < 70%" in greedy
    assert fidelity_problem(_fast("greedy", _reading(0.01, 0.97, 0.5), quantize="nf4"),
                            FidelityCriteria(min_greedy_agreement=None)) is None
    assert fidelity_problem(_fast("none", None, quantize="nf4"), c) is None  # not measured: timing alone
    assert fidelity_problem(_fast("skip", _reading(0, 0, 0, skipped="not measured: x"), quantize="nf4"), c) is None


def test_an_unfaithful_fast_run_is_not_recommended() -> None:
    session = _session([_fast("nf4", _reading(0.8, 0.6, 0.3), quantize="nf4"),
                        _fast("int8", _reading(0.002, 0.99, 0.95), quantize="int8")])
    session.runs[1].metrics.samples_ms = [s + 5 for s in session.runs[1].metrics.samples_ms]  # slower, faithful
    verdict = decide(session, Criteria())
    assert verdict.go and verdict.recommended is not None and verdict.recommended.run == "int8"
    nf4 = next(a for a in verdict.assessments if a.name == "nf4")
    assert not nf4.realtime and nf4.outcome == "not faithful"
    assert any(r.startswith("NOT FAITHFUL") for r in nf4.reasons)
    assert "output measured against the bf16 eager reference" in verdict.recommended.fidelity
    assert "Not measured: speech quality as heard" in verdict.recommended.fidelity


def test_deploy_text_of_an_unmeasured_quantized_run_says_so() -> None:
    assert "output fidelity not measured" in fidelity_note(_fast("q", None, quantize="int8"))
    assert fidelity_note(_fast("bf16", None)) == ""
    exact = fidelity_note(_fast("ref", _reading(0.0, 1.0, 1.0, self_test=True)))
    assert "exactly 0 KL and 100% agreement" in exact
