"""A history of results, one folder per machine fingerprint, and the trend across it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.records.schema import Session  # noqa: E402
from harness.records.store import RESULTS_JSON, ResultsFileError, load_session  # noqa: E402

DEFAULT_HISTORY = Path("reports") / "history"


def add(results: Path, history: Path) -> Path:
    """Copy a results file into history/<fingerprint>/<time>-<scenario>.json; returns where it went."""
    session = load_session(results)
    source = results / RESULTS_JSON if results.is_dir() else results
    stamp = session.created_at.strftime("%Y%m%dT%H%M%SZ")
    target = history / session.machine.fingerprint / f"{stamp}-{session.scenario.get('name', 'scenario')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    shutil.copyfile(source, temporary)
    temporary.replace(target)
    return target


def entries(history: Path, fingerprint: Optional[str] = None,
            scenario: Optional[str] = None) -> list[tuple[Path, Session]]:
    found = []
    pattern = f"{fingerprint}/*.json" if fingerprint else "*/*.json"
    for path in history.glob(pattern):
        try:
            session = load_session(path)
        except ResultsFileError:
            continue  # a foreign or newer file in the folder is not this history's
        if scenario is None or session.scenario.get("name") == scenario:
            found.append((path, session))
    return sorted(found, key=lambda item: item[1].created_at)


def latest_baseline(history: Path, current: Session) -> Optional[tuple[Path, Session]]:
    """The newest earlier session of the same scenario on the same machine."""
    candidates = [(p, s) for p, s in entries(history, current.machine.fingerprint, current.scenario.get("name"))
                  if s.created_at < current.created_at]
    return candidates[-1] if candidates else None


def trend_plot(sessions: list[Session], out: Path) -> Path:
    names = sorted({r.name for s in sessions for r in s.runs if r.metrics is not None})
    fig, ax = plt.subplots(figsize=(9, 4))
    for name in names:
        points = [(s.created_at, r.metrics.ms_per_step.p50, r.metrics.ms_per_step.p99)  # type: ignore[union-attr]
                  for s in sessions for r in s.runs if r.name == name and r.metrics is not None]
        if not points:
            continue
        when, p50, p99 = zip(*points)
        line = ax.plot(when, p50, marker="o", label=f"{name} p50")[0]
        ax.plot(when, p99, marker=".", linestyle=":", color=line.get_color(), label=f"{name} p99")
    budget = float(sessions[-1].scenario.get("frame_budget_ms", 80.0)) if sessions else 80.0
    ax.axhline(budget, color="#D62728", linestyle="--", label="budget")
    ax.set_ylabel("ms per step")
    ax.set_title(f"{len(sessions)} sessions on machine {sessions[-1].machine.fingerprint if sessions else '?'}")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.autofmt_xdate()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
