"""Results on disk: results.json (the Session) and results.csv (one row per run), replaced atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness.contract.atomic import atomic_write_text
from harness.records.files import ResultsFileError, read_schema_json, validate_file
from harness.records.migrate import migrate
from harness.records.schema import SCHEMA_NAME, SCHEMA_VERSION, RunResult, Session

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


def _csv_row(run: RunResult) -> dict[str, Any]:
    m = run.metrics
    row: dict[str, Any] = {
        "name": run.name,
        "status": run.status,
        "device": run.config.device.value,
        "dtype": run.config.dtype.value,
        "quantize": run.config.quantize.value,
        "offload": run.config.offload.value,
        "compile": run.config.compile,
        "cuda_graphs": run.config.cuda_graphs,
        "reason": run.reason,
        "worker_pid": run.worker_pid,
        "exit_code": run.exit_code,
        "signal": run.signal,
    }
    if m is not None:
        row.update({
            "frames": m.frames,
            "p50_ms": m.ms_per_step.p50,
            "p90_ms": m.ms_per_step.p90,
            "p99_ms": m.ms_per_step.p99,
            "max_ms": m.ms_per_step.max,
            "mean_ms": m.ms_per_step.mean,
            "rtf": m.rtf,
            "rtf_p99": m.rtf_p99,
            **{f"{stage}_p50_ms": value for stage, value in m.stage_p50_ms.items()},
            "peak_rss_bytes": m.peak_rss_bytes,
            "cuda_peak_allocated_bytes": m.cuda.peak_allocated_bytes if m.cuda else None,
            "load_s": m.load_s,
            "first_step_s": m.first_step_s,
            "warmup_s": m.warmup_s,
        })
    return row


def write_session_json(session: Session, path: Path) -> None:
    """The session alone, to exactly `path` (`harness report --update-results other.json` writes only that)."""
    atomic_write_text(path, session.model_dump_json(indent=2))


def write_session(session: Session, out_dir: Path) -> None:
    write_session_json(session, out_dir / RESULTS_JSON)
    frame = pd.DataFrame([_csv_row(run) for run in session.runs])
    atomic_write_text(out_dir / RESULTS_CSV, frame.to_csv(index=False))


def load_session(path: Path) -> Session:
    """Read results.json (or a folder holding one), migrating older schema versions; clear errors otherwise."""
    path, data = read_schema_json(path, RESULTS_JSON, SCHEMA_NAME, "results")
    try:
        data = migrate(data, SCHEMA_VERSION)
    except ValueError as exc:
        raise ResultsFileError(f"{path}: {exc}") from None
    except (TypeError, AttributeError, KeyError) as exc:  # an older file with fields of the wrong shape
        raise ResultsFileError(f"{path}: a malformed version-{data.get('schema_version')} results file "
                               f"({type(exc).__name__}: {str(exc)[:120]})") from None
    return validate_file(Session, data, path, "results")
