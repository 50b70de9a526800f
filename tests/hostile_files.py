"""Generators of hostile inputs for tests/test_hostile.py: results files, history folders, logs and scenarios as a
careless or adversarial user (or a broken disk) would hand them to the harness.

Every valid file is built through the real records (Session, RunResult, RunMetrics) and written by the real store,
so that the hostile variants differ from a file the harness writes by exactly the damage they name.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional

from harness.records.config import RunConfig
from harness.records.machine import Machine
from harness.records.scenario import RunDefaults, Scenario
from harness.records.schema import RunMetrics, RunResult, Session
from harness.records.store import write_session
from harness.stats.percentiles import summarize


def machine(cpu: str = "Hostile CPU") -> Machine:
    return Machine(hostname="h", os="Linux", os_release="6", platform="p", cpu_model=cpu, cpu_cores_logical=4,
                   cpu_cores_physical=2, ram_total_bytes=16 * 2**30, python="3.11",
                   packages={"torch": "2.9.1", "moshi": "0.2.13"}, fingerprint="f")


def steps(n: int, mean: float = 40.0, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [mean * math.exp(rng.gauss(0.0, 0.05)) for _ in range(n)]


def metrics(samples: list[float]) -> RunMetrics:
    # the stored percentiles of a hostile file may look fine whatever its samples are: from the finite ones
    stats = summarize([s for s in samples if math.isfinite(s)] or [40.0])
    return RunMetrics(frames=len(samples), warmup_frames=5, frame_budget_ms=80.0, ms_per_step=stats,
                      rtf=stats.p50 / 80, rtf_p99=stats.p99 / 80, stage_p50_ms={}, peak_rss_bytes=2**30,
                      rss_after_load_bytes=2**30, load_s=1.0, first_step_s=0.1, warmup_s=1.0, samples_ms=samples,
                      stage_samples_ms={}, audio_s=len(samples) * 0.08)


def run(name: str, samples: Optional[list[float]]) -> RunResult:
    cfg = RunConfig(name=name, **{**RunDefaults().model_dump(), "device": "cpu"})
    return RunResult(name=name, config=cfg, status="ok" if samples is not None else "failed",
                     reason="" if samples is not None else "it failed",
                     metrics=metrics(samples) if samples is not None else None)


def scenario(name: str = "hostile") -> Scenario:
    # a name the scenario model refuses (a path, markup) is written as a hand-edited or foreign file would hold it
    valid = Scenario(name="hostile", preset="personaplex-tiny", frames=300, torch_threads=2, runs=[{"device": "cpu"}])
    return valid.model_copy(update={"name": name})


def session(runs: list[RunResult], day: int = 0, name: str = "hostile", cpu: str = "Hostile CPU") -> Session:
    when = datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(days=day)
    return Session(harness_version="0.1.0", created_at=when, updated_at=when, state="complete", command=[],
                   scenario_path="s.yaml", scenario=scenario(name), weights="synthetic", machine=machine(cpu),
                   runs=runs)


def results(folder: Path, samples: Optional[list[float]] = None, day: int = 0, name: str = "hostile",
            run_name: str = "cpu-bf16-eager") -> Path:
    """A results folder as the harness writes it; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    write_session(session([run(run_name, steps(300) if samples is None else samples)], day, name), folder)
    return folder


def damaged(folder: Path, how: str) -> Path:
    """folder/results.json damaged in one way; returns the file."""
    path = folder / "results.json"
    raw = path.read_bytes()
    data = json.loads(raw)
    damage: dict[str, Callable[[], bytes]] = {
        "truncated": lambda: raw[: len(raw) // 2],
        "empty": lambda: b"",
        "utf16": lambda: raw.decode("utf-8").encode("utf-16"),
        "latin1-bytes": lambda: raw.replace(b'"hostile"', b'"hostil\xe9"'),
        "not-an-object": lambda: b"[1, 2, 3]",
        "deep": lambda: b"[" * 100_000 + b"]" * 100_000,
        "wrong-schema": lambda: json.dumps({**data, "schema_name": "other"}).encode(),
        "newer": lambda: json.dumps({**data, "schema_version": 99}).encode(),
        "v1-malformed": lambda: json.dumps({**data, "schema_version": 1, "runs": [1, "x"]}).encode(),
        "v1-runs-not-list": lambda: json.dumps({**data, "schema_version": 1, "runs": 5}).encode(),
        "bad-field": lambda: json.dumps({**data, "runs": [{**data["runs"][0], "status": "maybe"}]}).encode(),
        "null-number": lambda: raw.replace(b'"p50": ', b'"p50": null, "x": ', 1),
        "huge-number": lambda: raw.replace(b'"frames": 300', b'"frames": 1' + b"0" * 5000, 1),
    }
    path.write_bytes(damage[how]())
    return path


DAMAGES = ("truncated", "empty", "utf16", "latin1-bytes", "not-an-object", "deep", "wrong-schema", "newer",
           "v1-malformed", "v1-runs-not-list", "bad-field", "null-number", "huge-number")

GARBAGE_SAMPLES: dict[str, list[float]] = {
    "all-nan": [float("nan")] * 500,
    "some-inf": steps(499) + [float("inf")],
    "negative": [-40.0] * 500,
    "zero": [0.0] * 500,
    "empty": [],
}

MARKUP_NAMES = ("[red]GO[/red]", "x\x1b]0;pwned\x07\x1b[2J", "$\\frac{a}{b}$ $x", "a|b\n## GO", "<script>alert(1)</script>")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time: what a command must not change."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}
