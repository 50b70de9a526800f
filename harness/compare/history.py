"""A history of results, one folder per machine's HARDWARE, and the trend across it.

Layout: <history>/<hardware key>/<UTC time>-<scenario>.json (harness.compare.hardware). Software
versions are not part of the key: a torch or moshi bump keeps its baseline and shows up as a
change in the trend and in `harness compare`'s output. A session's hardware is read from the file
itself, never from the folder name, so histories written under the older layout (folders named by
`Machine.fingerprint`, which hashed torch and moshi versions too) are read as they are.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.compare.hardware import hardware_key, software_of  # noqa: E402
from harness.records.schema import Session  # noqa: E402
from harness.records.store import RESULTS_JSON, ResultsFileError, load_session  # noqa: E402

DEFAULT_HISTORY = Path("reports") / "history"


@dataclass(frozen=True)
class Entry:
    path: Path
    session: Session
    hardware: str


def add(results: Path, history: Path) -> Path:
    """Copy a results file into history/<hardware key>/<time>-<scenario>.json; returns where it went."""
    session = load_session(results)
    source = results / RESULTS_JSON if results.is_dir() else results
    stamp = session.created_at.strftime("%Y%m%dT%H%M%SZ")
    target = history / hardware_key(session.machine) / f"{stamp}-{session.scenario.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    shutil.copyfile(source, temporary)
    temporary.replace(target)
    return target


def entries(history: Path, hardware: Optional[str] = None, scenario: Optional[str] = None) -> list[Entry]:
    """Every readable session in the history (any folder layout), oldest first, filtered by the hardware key
    computed from the session and by scenario name. A key prefix is accepted."""
    found = []
    for path in history.glob("*/*.json"):
        try:
            session = load_session(path)
        except ResultsFileError:
            continue  # a foreign or newer file in the folder is not this history's
        key = hardware_key(session.machine)
        if hardware is not None and not key.startswith(hardware):
            continue
        if scenario is None or session.scenario.name == scenario:
            found.append(Entry(path, session, key))
    return sorted(found, key=lambda e: e.session.created_at)


def latest_baseline(history: Path, current: Session) -> Optional[Entry]:
    """The newest earlier session of the same scenario on the same hardware (software may differ)."""
    candidates = [e for e in entries(history, hardware_key(current.machine), current.scenario.name)
                  if e.session.created_at < current.created_at]
    return candidates[-1] if candidates else None


@dataclass(frozen=True)
class TrendRow:
    when: str
    software: dict[str, str]
    changed: list[str]  # software that differs from the previous row
    p50_ms: dict[str, float]  # run name -> p50


def trend_rows(sessions: list[Session]) -> list[TrendRow]:
    rows: list[TrendRow] = []
    previous: dict[str, str] = {}
    for s in sessions:
        software = software_of(s)
        changed = [f"{k} {previous.get(k, 'absent')} -> {software.get(k, 'absent')}"
                   for k in dict.fromkeys([*previous, *software]) if rows and previous.get(k) != software.get(k)]
        rows.append(TrendRow(when=s.created_at.strftime("%Y-%m-%d %H:%M"), software=software, changed=changed,
                             p50_ms={r.name: r.metrics.ms_per_step.p50 for r in s.runs if r.metrics is not None}))
        previous = software
    return rows


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
    # Software is a shown dimension: a vertical line where it changed, labelled with what changed.
    for session, row in zip(sessions, trend_rows(sessions)):
        if row.changed:
            ax.axvline(session.created_at, color="#7F7F7F", linewidth=0.8)
            ax.annotate("\n".join(row.changed), (session.created_at, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=6, rotation=90, va="top", ha="right", color="#555555")
    budget = sessions[-1].scenario.frame_budget_ms if sessions else 80.0
    ax.axhline(budget, color="#D62728", linestyle="--", label="budget")
    ax.set_ylabel("ms per step")
    key = hardware_key(sessions[-1].machine) if sessions else "?"
    first = software_of(sessions[0]) if sessions else {}
    ax.set_title(f"{len(sessions)} sessions on hardware {key}; software at start: "
                 + ", ".join(f"{k} {v}" for k, v in first.items() if k in ("torch", "moshi", "CUDA")), fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.autofmt_xdate()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
