"""Older results files read by this harness: each step lifts one schema version to the next.

A step changes only what its version changed, on the raw JSON, before validation; a file from a newer
harness than this one is refused (its fields may mean something this one cannot know).
"""

from __future__ import annotations

from typing import Any, Callable

Data = dict[str, Any]


def _v1_to_v2(data: Data) -> Data:
    """v2 counts measured seconds as seconds of audio and records them; everything else v2 added has defaults."""
    for run in data.get("runs", []):
        metrics = run.get("metrics")
        if isinstance(metrics, dict) and "audio_s" not in metrics:
            metrics["audio_s"] = metrics.get("frames", 0) * metrics.get("frame_budget_ms", 80.0) / 1e3
    data["schema_version"] = 2
    return data


def _v2_to_v3(data: Data) -> Data:
    """v3 stores the scenario typed. Files written before the persona prefill existed ran none: say so explicitly,
    since an unset persona now means the preset's default prefill."""
    scenario = data.get("scenario")
    if isinstance(scenario, dict) and "persona" not in scenario:
        scenario["persona"] = False
    data["schema_version"] = 3
    return data


def _v3_to_v4(data: Data) -> Data:
    """v4 splits `time_to_first_audio_s` (load + warmup + prefill + first frame) into a per-call figure and a cold
    start; v3 recorded the parts (not the imports), so both are rebuilt from them."""
    synthetic = data.get("weights") == "synthetic"
    for run in data.get("runs", []):
        metrics = run.get("metrics")
        if not isinstance(metrics, dict):
            continue
        metrics.pop("time_to_first_audio_s", None)
        load, warmup = metrics.get("load_s", 0.0), metrics.get("warmup_s", 0.0)
        # setdefault: a file that already has the split (written while this change was being made) keeps its own
        metrics.setdefault("cold_start", {"import_s": None, "load_s": load, "warmup_s": warmup,
                                          "total_s": load + warmup, "synthetic": synthetic})
        first = metrics.get("first_frame_ms")
        if first is not None:
            prefill = metrics.get("prefill") or {}
            voice, steps = prefill.get("voice_encode_ms", 0.0) / 1e3, prefill.get("seconds", 0.0)
            metrics.setdefault("first_audio", {"voice_encode_s": voice, "prefill_s": steps,
                                               "first_frame_s": first / 1e3, "per_call_s": voice + steps + first / 1e3,
                                               "synthetic": synthetic})
    data["schema_version"] = 4
    return data


def _v4_to_v5(data: Data) -> Data:
    """5 added what 4 did not measure (output fidelity, the scenario's input and fidelity criteria): all optional,
    absent from a version-4 file, nothing to convert."""
    data["schema_version"] = 5
    return data


STEPS: dict[int, Callable[[Data], Data]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}


def migrate(data: Data, target: int) -> Data:
    """Lift `data` to `target`; raises ValueError for a version there is no path from."""
    version = data.get("schema_version")
    while version != target:
        step = STEPS.get(version) if isinstance(version, int) else None
        if step is None:
            newer = isinstance(version, int) and version > target
            raise ValueError(f"results schema version {version} " + (
                f"is newer than this harness reads ({target}): upgrade harness" if newer
                else f"cannot be migrated to {target}"))
        data = step(data)
        version = data.get("schema_version")
    return data
