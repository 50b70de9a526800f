"""Capacity search logic on fabricated probes, the planner's per-session memory, cost, and scenario fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.knowledge.gpus import find_gpu
from harness.knowledge.prices import default_price, resolve_price
from harness.plan.capacity import memory_bound, session_bound, session_cost
from harness.plan.memory import GIB, MIB
from harness.plan.planner import plan_run
from harness.plan.target import PlanTarget, from_spec
from harness.records.capacity import CapacityProbe, CapacitySpec
from harness.records.config import RunConfig
from harness.records.identity import measurement_of
from harness.records.scenario import Criteria, Scenario
from harness.scenario.expand import expand_runs
from harness.session.capacity import cost_line, memory_slope, search, ticks_to_certify
from harness.session.size_search import OutOfTime
from harness.worker.describe import describe_preset


@pytest.fixture(scope="module")
def plex():  # noqa: ANN201
    return describe_preset("personaplex-7b")


def _probe(n: int, ok: bool, memory: int | None = None) -> CapacityProbe:
    return CapacityProbe(sessions=n, verdict="realtime" if ok else "late", ran=True, peak_memory_bytes=memory)


def _measure(limit: int, tried: list[int]):  # noqa: ANN202
    def measure(n: int) -> CapacityProbe:
        tried.append(n)
        return _probe(n, n <= limit)
    return measure


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 6, 7, 8, 13])
def test_double_then_bisect_finds_the_largest_passing_size(limit: int) -> None:
    tried: list[int] = []
    probes, best, limited = search(64, lambda n: None, _measure(limit, tried))
    assert best == limit and limited == "time"
    assert limit + 1 in tried and all(tried.count(n) == 1 for n in tried)  # the next size failed, nothing twice
    doubling = [n for n in tried if n & (n - 1) == 0]
    assert doubling == sorted(doubling) and doubling[0] == 1
    assert [p.sessions for p in probes] == tried


def test_nothing_passes() -> None:
    probes, best, limited = search(64, lambda n: None, _measure(0, []))
    assert best == 0 and limited == "time" and [p.sessions for p in probes] == [1]


def test_max_sessions_caps_the_search() -> None:
    tried: list[int] = []
    _, best, limited = search(6, lambda n: None, _measure(100, tried))
    assert best == 6 and limited == "max_sessions" and tried == [1, 2, 4, 6]


def test_planner_says_no_is_recorded_without_running() -> None:
    tried: list[int] = []
    probes, best, limited = search(64, lambda n: "does not fit" if n > 5 else None, _measure(100, tried))
    assert best == 5 and limited == "memory"
    unrun = {p.sessions for p in probes if not p.ran}
    assert unrun and all(n > 5 for n in unrun) and 6 in unrun and not unrun & set(tried)
    assert all(p.verdict == "memory" and p.reasons == ["does not fit"] for p in probes if not p.ran)


def test_time_limit_below_the_memory_bound_is_time() -> None:
    _, best, limited = search(64, lambda n: "no" if n > 10 else None, _measure(3, []))
    assert best == 3 and limited == "time"


def test_ticks_to_certify_is_the_clean_length_per_burst_length() -> None:
    assert ticks_to_certify(Criteria()) == 4606  # 10 x ln(100) / 1%: late ticks come in bursts of up to 10
    assert ticks_to_certify(Criteria(burst_frames=1)) == 459
    assert ticks_to_certify(Criteria(late_frame_target=0.05, confidence=0.95, burst_frames=1)) == 59


@pytest.mark.parametrize("sizes_in_time, limit, best", [(3, 100, 4), (5, 6, 6), (5, 5, 4), (0, 100, 0)])
def test_out_of_time_keeps_what_was_measured(sizes_in_time: int, limit: int, best: int) -> None:
    """`harness run --time-limit`: the probe runner raises OutOfTime; the search returns the largest size that passed
    below any size that failed, as a lower bound, never a verdict on a size it did not measure."""
    tried: list[int] = []

    def measure(n: int) -> CapacityProbe:
        if len(tried) == sizes_in_time:
            raise OutOfTime("the session's --time-limit was reached")
        tried.append(n)
        return _probe(n, n <= limit)

    probes, found, limited = search(64, lambda n: None, measure)
    assert limited == "time_limit" and found == best
    assert [p.sessions for p in probes] == tried




def test_memory_slope_and_cost() -> None:
    probes = [_probe(1, True, 940 * MIB), _probe(2, True, 1030 * MIB), _probe(4, True, 1090 * MIB),
              CapacityProbe(sessions=8, verdict="memory", ran=False)]
    assert memory_slope(probes) == pytest.approx(30 * MIB, rel=1e-6)
    line = cost_line(CapacitySpec(gpu_hour_usd=2.0), None, "NVIDIA H100 80GB HBM3", 4, 400.0, paced=True)
    assert line is not None and line.per_conversation_hour_usd == pytest.approx(0.5)
    assert line.energy_wh_per_conversation_hour == pytest.approx(100.0)  # 400 J/s of audio at real-time pace, / 4
    assert "scenario" in line.price_source
    # Back to back (pace fast): a 40 ms tick's compute energy (400 J/s x 80 ms = 32 J) + 100 W idle for the other
    # 40 ms of the frame (4 J) = 36 J per 80 ms = 450 J/s, over 4 sessions.
    fast = cost_line(CapacitySpec(gpu_hour_usd=2.0), None, "H100", 4, 400.0, tick_ms=40.0, period_ms=80.0,
                     idle_power_w=100.0)
    assert fast is not None and fast.energy_wh_per_conversation_hour == pytest.approx(112.5)
    assert "idle power 100 W" in fast.energy_note
    # ... and without the idle power no real-time figure: it would understate the energy.
    bare = cost_line(CapacitySpec(gpu_hour_usd=2.0), None, "H100", 4, 400.0, tick_ms=40.0)
    assert bare is not None and bare.energy_wh_per_conversation_hour is None and "not measured" in bare.energy_note
    assert cost_line(CapacitySpec(), 3.0, "cpu", 2, None).per_conversation_hour_usd == pytest.approx(1.5)
    assert cost_line(CapacitySpec(), None, "AMD EPYC", 2, None) is None  # no price for a CPU: said, not guessed


def test_price_table_has_source_and_order() -> None:
    h100 = default_price("NVIDIA H100 80GB HBM3")
    assert h100 is not None and "deploybase" in h100.source and h100.usd_per_hour > 0
    assert resolve_price("NVIDIA H100 80GB HBM3", 5.0, None).usd_per_hour == 5.0
    assert resolve_price("NVIDIA H100 80GB HBM3", 5.0, 7.0).source.startswith("harness run")


def _cuda_run(**kw: object) -> RunConfig:
    base = dict(name="r", device="cuda", dtype="bfloat16", quantize="none", offload="none", offload_fraction=0.5,
                compile=False, cuda_graphs=False)
    return RunConfig(**{**base, **kw})


def test_sessions_by_memory_on_gpus(plex) -> None:  # noqa: ANN001
    run = _cuda_run()
    cost = session_cost(plex, run, from_spec(find_gpu("h100"), None))
    temporal = 2 * 32 * 3000 * 32 * 128 * 2  # K and V x layers x context x heads x head_dim x bf16
    assert cost.items["temporal KV cache"] == temporal and cost.where == "device"
    bounds = {}
    for name in ("h100", "4090", "1080ti"):
        target = from_spec(find_gpu(name), None)
        n = memory_bound(plex, run, target)
        bounds[name] = n
        if n:  # n fits, n + 1 does not: the planner's own rule
            assert plan_run(plex, run, target, batch=n).fits_memory
        assert not plan_run(plex, run, target, batch=n + 1).fits_memory
    assert bounds["h100"] > bounds["4090"] >= 1 and bounds["1080ti"] == 0
    h100 = session_bound(plex, run, from_spec(find_gpu("h100"), None), deadline_ms=72.0)
    assert h100.floor_ms_at_max > h100.floor_ms_one  # every session's cache is read every tick


def test_host_memory_limit_bounds_cpu_sessions(plex) -> None:  # noqa: ANN001
    run = _cuda_run(device="cpu")
    target = PlanTarget(label="cpu", host_ram_bytes=64 * GIB)
    two = plan_run(plex, run, target, batch=2).host_peak_bytes
    assert memory_bound(plex, run, target, host_memory_limit_bytes=two + 1) == 2


def test_scenario_capacity_and_batch_axis(tmp_path: Path) -> None:
    scenario = Scenario.model_validate({
        "name": "c", "preset": "personaplex-tiny", "defaults": {"device": "cpu"},
        "matrix": {"batch_size": [1, 4]},
        "runs": [{"name": "cap", "capacity": {"max_sessions": 8, "gpu_hour_usd": 1.5, "join": {"warmup_steps": 2}}}]})
    runs = {r.name: r for r in expand_runs(scenario)}
    assert set(runs) == {"cpu-bf16-eager-b1", "cpu-bf16-eager-b4", "cap"}
    assert runs["cpu-bf16-eager-b4"].batch_size == 4 and runs["cap"].capacity.max_sessions == 8
    assert runs["cap"].capacity.join.warmup_steps == 2
    # a batch of 4 is another measurement than one session
    plain = RunConfig(name="p", device="cpu", dtype="bfloat16", quantize="none", offload="none",
                      offload_fraction=0.5, compile=False, cuda_graphs=False, serving="personaplex-server")
    assert "batch_size" not in plain.model_dump(exclude_none=True)
    one = measurement_of(scenario, plain, weights="synthetic", frames=10, warmup=2)
    four = measurement_of(scenario, runs["cpu-bf16-eager-b4"], weights="synthetic", frames=10, warmup=2)
    assert one.differences(four) == ["batch_size 1 -> 4"]
    with pytest.raises(ValueError):
        Scenario.model_validate({"name": "c", "preset": "personaplex-tiny", "runs": [{"capacity": {"max_sessions": 0}}]})


def test_memory_slope_uses_all_sizes_when_only_one_is_batched() -> None:
    assert memory_slope([_probe(1, True, 1000 * MIB), _probe(2, True, 1030 * MIB)]) == pytest.approx(30 * MIB, rel=1e-6)
    assert memory_slope([_probe(1, True, 1000 * MIB)]) is None


def test_search_with_the_planners_bound_never_runs_what_cannot_fit() -> None:
    tiny = describe_preset("personaplex-tiny")
    run = _cuda_run(device="cpu")
    target = PlanTarget(label="cpu", host_ram_bytes=64 * GIB)
    three, four = (plan_run(tiny, run, target, batch=n).host_peak_bytes for n in (3, 4))
    limit = (three + four) // 2
    bound = memory_bound(tiny, run, target, host_memory_limit_bytes=limit)
    assert bound == 3
    tried: list[int] = []
    probes, best, limited = search(16, lambda n: None if n <= bound else "no", _measure(100, tried))
    assert best == 3 and limited == "memory" and tried == [1, 2, 3]
    assert {p.sessions: p.ran for p in probes} == {1: True, 2: True, 4: False, 3: True}


def test_idle_power_comes_from_the_workers_idle_window() -> None:
    from harness.contract.wire import TelemetrySeries
    from harness.session.summaries import summarize_telemetry

    t = [i / 10 for i in range(40)]  # 10 Hz: idle from 0.5 to 1.5 s, frames from 2.0 s on
    power = [300.0 if x < 0.5 else 80.0 if x <= 1.5 else 400.0 for x in t]
    series = TelemetrySeries(hz=10, sources={"gpu": "available"}, t_s=t, gpu_power_w=power,
                             gpu_energy_j=[400.0 * x for x in t])
    out = summarize_telemetry(series, 2.0, 3.9, audio_s=1.9, idle_window=[0.5, 1.5])
    assert out.idle_power_w == 80.0 and out.gpu_power_mean_w == 400.0
    assert summarize_telemetry(series, 2.0, 3.9, audio_s=1.9).idle_power_w is None
