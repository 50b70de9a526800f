"""Is a configuration's output still the bf16 reference's? The fidelity rule of the verdict, and its words.

A configuration that misses the scenario's fidelity criteria (harness.records.fidelity) is not recommended however
fast it is: "NOT FAITHFUL" with the figure that missed. One that was not measured is judged on its timing alone, and
the deployment text says so. Figures from synthetic weights are numerics (how far the arithmetic moved the logits),
not speech quality, and every sentence built here says which.
"""

from __future__ import annotations

from typing import Optional

from harness.contract.wire import FidelityReading, StreamFidelity
from harness.records.fidelity import FidelityCriteria
from harness.records.schema import RunResult

SYNTHETIC_LABEL = "synthetic weights: numerics, not speech quality"


def reading(run: RunResult) -> Optional[FidelityReading]:
    """The run's measured fidelity, or None where it was not measured (or the pass was skipped)."""
    f = run.metrics.fidelity if run.metrics is not None else None
    return f if f is not None and not f.skipped and f.streams else None


def _worst(f: FidelityReading, key: str, largest: bool) -> StreamFidelity:
    pick = max if largest else min
    return pick(f.streams, key=lambda s: getattr(s, key))


def fidelity_problem(run: RunResult, criteria: FidelityCriteria) -> Optional[str]:
    """Why the run's output is not faithful to the bf16 reference, or None (faithful, or not measured)."""
    f = reading(run)
    if f is None:
        return None
    label = f" ({SYNTHETIC_LABEL})" if f.synthetic else ""
    misses = []
    kl = _worst(f, "kl_mean", largest=True)
    if kl.kl_mean > criteria.max_kl_mean:
        misses.append(f"{kl.stream} mean KL {kl.kl_mean:.3g} nats > {criteria.max_kl_mean:g}")
    top1 = _worst(f, "top1_agreement", largest=False)
    if top1.top1_agreement < criteria.min_top1_agreement:
        misses.append(f"{top1.stream} top-1 agreement {top1.top1_agreement:.1%} < {criteria.min_top1_agreement:.0%}")
    if criteria.min_greedy_agreement is not None and f.greedy_agreement < criteria.min_greedy_agreement:
        misses.append(f"greedy token agreement {f.greedy_agreement:.1%} < {criteria.min_greedy_agreement:.0%}")
    if f.non_finite_frames:
        misses.append(f"{f.non_finite_frames} of {f.frames} frames gave NaN/Inf logits")
    if not misses:
        return None
    return f"NOT FAITHFUL to the bf16 reference: {'; '.join(misses)} over {f.frames} teacher-forced frames{label}"


def fidelity_summary(f: FidelityReading) -> str:
    """One line of figures: worst mean KL, worst top-1 agreement, greedy agreement."""
    kl = _worst(f, "kl_mean", largest=True)
    top1 = _worst(f, "top1_agreement", largest=False)
    return (f"worst mean KL {kl.kl_mean:.3g} nats ({kl.stream}), worst top-1 agreement {top1.top1_agreement:.1%} "
            f"({top1.stream}), greedy token agreement {f.greedy_agreement:.1%} over {f.frames} frames")


def fidelity_note(run: RunResult) -> str:
    """What the deployment text says of the output: measured against the reference (and what was not), or not."""
    f = run.metrics.fidelity if run.metrics is not None else None
    quantized = run.config.quantize.value != "none"
    if f is None:
        return ("output fidelity not measured (fidelity: frames 0, or a file from before it was): the speed is "
                "measured, what the model says is not" if quantized or run.config.dtype.value != "bfloat16" else "")
    if f.skipped:
        return f"output fidelity {f.skipped}"
    if f.self_test:
        return (f"the bf16 reference itself: its self-test against a second copy read "
                f"{'exactly 0 KL and 100% agreement' if _exact(f) else fidelity_summary(f)}")
    label = f"; {SYNTHETIC_LABEL}" if f.synthetic else ""
    return (f"output measured against the bf16 eager reference (same weights and input, {f.method.split(';')[0]}): "
            f"{fidelity_summary(f)}{label}. Not measured: speech quality as heard (MOS, WER), sampling at "
            "temperature (greedy decoding compared), conversations longer than the frames compared")


def _exact(f: FidelityReading) -> bool:
    return all(s.kl_max == 0.0 and s.top1_agreement == 1.0 for s in f.streams) and f.greedy_agreement == 1.0
