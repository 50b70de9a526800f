"""What makes two measurements of a run the same measurement: for --resume (and shown to compare)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from harness.records.config import RunConfig

# Scenario fields that change what a worker measures (not names, descriptions, criteria or time limits).
MEASUREMENT_FIELDS = ("preset", "batch_size", "torch_threads", "frame_budget_ms", "pace", "seed", "telemetry_hz",
                      "host_memory_limit_gib", "persona")


def measurement_key(run: RunConfig, scenario: dict[str, Any], weights: str, frames: int, warmup: int) -> str:
    fields = {k: scenario.get(k) for k in MEASUREMENT_FIELDS}
    fields.update(run=run.measurement_key(), weights=weights, frames=frames, warmup=warmup)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
