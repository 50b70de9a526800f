"""What the measurements say about serving: each server frame against the bare core, the mouth-to-ear latency
budget of each run, and the changes worth making. Decided here, rendered by the report."""

from __future__ import annotations

from typing import Optional

from harness.contract.presets import MAX_DELAY_FRAMES
from harness.knowledge.deploy import PERSONAPLEX_INPUT_LAG_FRAMES
from harness.records.config import Serving
from harness.records.scenario import Criteria, Latency
from harness.records.schema import RunResult, Session
from harness.records.verdict import LatencyBudget, LatencyTerm, ServingComparison

DUPLICATE_MIMI_STAGES = ("other_encode", "other_decode")
CORE_STAGES = ("encode", "lm_step", "decode")


def non_lm_ms(run: RunResult) -> Optional[float]:
    """p50 frame minus p50 LMGen.step: Mimi, and in a server frame everything the server adds."""
    m = run.metrics
    if m is None or "lm_step" not in m.stage_p50_ms:
        return None
    return m.ms_per_step.p50 - m.stage_p50_ms["lm_step"]


def _twin_key(run: RunResult) -> str:
    return run.config.model_copy(update={"name": "", "serving": Serving.model, "timeout_s": None}).model_dump_json()


def compare_serving(session: Session) -> list[ServingComparison]:
    """Every ok run measured with a server's frame (NVIDIA's or moshi's), beside its twin measured as the bare core
    when the scenario has one."""
    ok = [r for r in session.runs if r.status == "ok" and r.metrics is not None]
    cores = {_twin_key(r): r for r in ok if r.config.serving is Serving.model}
    out = []
    for server in (r for r in ok if r.config.serving is not Serving.model):
        m = server.metrics
        assert m is not None
        core = cores.get(_twin_key(server))
        extras = {k: v for k, v in m.stage_p50_ms.items() if k not in CORE_STAGES}
        duplicate = sum(m.stage_p50_ms.get(s, 0.0) for s in DUPLICATE_MIMI_STAGES)
        out.append(ServingComparison(
            server_run=server.name, server_total_ms=m.ms_per_step.p50, server_non_lm_ms=non_lm_ms(server),
            core_run=core.name if core else None,
            core_total_ms=core.metrics.ms_per_step.p50 if core and core.metrics else None,
            core_non_lm_ms=non_lm_ms(core) if core else None,
            duplicate_mimi_ms=duplicate, extras_ms=extras))
    return out


def latency_budget(run: RunResult, criteria: Criteria, latency: Latency) -> Optional[LatencyBudget]:
    m = run.metrics
    if m is None:
        return None
    frame = m.frame_budget_ms
    terms = [
        LatencyTerm(name="frame accumulation", ms=frame,
                    source=f"design: a step needs one whole frame of audio ({frame:g} ms) before it can start"),
        LatencyTerm(name="step (p99)", ms=m.ms_per_step.p99, source="measured here"),
        LatencyTerm(name="acoustic delay", ms=MAX_DELAY_FRAMES * frame,
                    source=f"model: moshi's delays emit a step's audio {MAX_DELAY_FRAMES} frame later"),
    ]
    server = run.config.serving is Serving.personaplex_server
    terms.append(LatencyTerm(name="PersonaPlex input lag", ms=PERSONAPLEX_INPUT_LAG_FRAMES * frame if server else 0.0,
                             source="NVIDIA's LMGen lets the user's audio enter the model one frame later (server "
                                    "frames); moshi's core has no such lag"))
    terms.append(LatencyTerm(name="jitter buffer", ms=criteria.buffer_ms(frame),
                             source="the verdict's playback buffer (criteria.jitter_buffer_ms)"))
    terms.append(LatencyTerm(name="network round trip", ms=latency.network_rtt_ms,
                             source="declared in the scenario (latency.network_rtt_ms)"))
    terms.append(LatencyTerm(name="audio path", ms=latency.audio_path_ms,
                             source="declared in the scenario (latency.audio_path_ms), e.g. WSLg's 30-50 ms"))
    total = sum(t.ms for t in terms)
    return LatencyBudget(run=run.name, terms=terms, total_ms=total, target_ms=latency.target_ms,
                         within_target=total <= latency.target_ms)


def advice(comparisons: list[ServingComparison]) -> list[str]:
    out = []
    for c in comparisons:
        if c.duplicate_mimi_ms and c.server_total_ms:
            out.append(f"{c.server_run}: NVIDIA's server runs a second Mimi every frame and discards it; dropping "
                       f"`other_mimi` from its opus_loop would save {c.duplicate_mimi_ms:.1f} ms of the "
                       f"{c.server_total_ms:.1f} ms frame (p50, measured here)")
    return out
