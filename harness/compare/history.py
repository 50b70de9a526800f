"""A history of results, one folder per machine's HARDWARE, and the trend across it.

Layout: <history>/<hardware key>/<UTC time>-<scenario>-<content hash>.json (harness.compare.hardware). Software
versions are not part of the key: a torch or moshi bump keeps its baseline folder and is marked in the trend. But
torch, moshi and moshi_flavour are part of a run's measurement identity (harness.records.identity): `harness compare
--history` refuses such a pair as not comparable (exit 5), naming the flag, unless it is asked with
`--allow-difference torch` (and `moshi`, `moshi_flavour`), as the nightly does; then the change includes the
upgrade's effect, said in a warning. Other frames or another seed are compared, with a warning. A session's
hardware is read from the file itself, never from the folder name, so histories written under the older layout
(folders named by `Machine.fingerprint`, which hashed torch and moshi versions too) are read as they are.

Entries never collide and never leave the folder: the scenario name is reduced to a file-name-safe word (a name
like `../../x` cannot climb out), the content's hash makes the name unique, and the entry is published with a
hard link from a private temporary file, which fails rather than replaces when the name exists: two concurrent
`history add` of different results both land, the same results added twice is one entry. A file in the folder
that cannot be read is skipped with a warning naming it; the other entries still count.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.compare.hardware import hardware_key, software_of  # noqa: E402
from harness.records.schema import Session  # noqa: E402
from harness.records.store import RESULTS_JSON, ResultsFileError, load_session  # noqa: E402
from harness.records.text import NO_MATHTEXT, plot_text  # noqa: E402

DEFAULT_HISTORY = Path("reports") / "history"


@dataclass(frozen=True)
class Entry:
    path: Path
    session: Session
    hardware: str


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: object) -> str:
    """A scenario name as one file-name word: no separators, no leading dots, at most 60 characters."""
    word = _UNSAFE.sub("_", str(name or "scenario")).strip("._-")[:60]
    return word or "scenario"


@dataclass(frozen=True)
class Added:
    path: Path
    new: bool  # False: the same results were already in the history


def add(results: Path, history: Path) -> Added:
    """Copy a results file into history/<hardware key>/<time>-<scenario>-<hash>.json."""
    session = load_session(results)
    source = results / RESULTS_JSON if results.is_dir() else results
    content = source.read_bytes()
    digest = hashlib.sha256(content).hexdigest()[:10]
    stamp = session.created_at.strftime("%Y%m%dT%H%M%SZ")
    folder = history / hardware_key(session.machine)
    target = folder / f"{stamp}-{safe_name(session.scenario.name)}-{digest}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".add.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, target)  # never replaces: an existing name is the same content (same hash)
            return Added(target, True)
        except FileExistsError:
            return Added(target, False)
        finally:
            Path(temporary).unlink(missing_ok=True)
    except OSError as exc:
        raise ResultsFileError(f"{folder}: cannot write the history entry: {exc.strerror or exc}") from None


@dataclass
class Skipped:
    path: Path
    reason: str


@dataclass
class Scan:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def scan(history: Path, hardware: Optional[str] = None, scenario: Optional[str] = None) -> Scan:
    """Every readable session in the history (any folder layout), oldest first, filtered by the hardware key
    computed from the session and by scenario name (a key prefix is accepted); unreadable files are listed in
    `skipped` with the reason, never fatal for the others."""
    result = Scan()
    if history.exists() and not history.is_dir():
        raise ResultsFileError(f"{history}: not a history folder (a file)")
    for path in sorted(history.glob("*/*.json")):
        try:
            session = load_session(path)
        except ResultsFileError as exc:
            result.skipped.append(Skipped(path, str(exc)))
            continue
        except OSError as exc:
            result.skipped.append(Skipped(path, f"{path}: cannot read: {exc.strerror or exc}"))
            continue
        key = hardware_key(session.machine)
        if hardware is not None and not key.startswith(hardware):
            continue
        if scenario is None or session.scenario.name == scenario:
            result.entries.append(Entry(path, session, key))
    result.entries.sort(key=lambda e: e.session.created_at)
    return result


def entries(history: Path, hardware: Optional[str] = None, scenario: Optional[str] = None) -> list[Entry]:
    """The readable sessions of `scan` (unreadable files left out)."""
    return scan(history, hardware, scenario).entries


def latest_baseline(history: Path, current: Session, scanned: Optional[Scan] = None) -> Optional[Entry]:
    """The newest earlier session of the same scenario on the same hardware (software may differ)."""
    found = scanned.entries if scanned is not None else entries(history)
    key, name = hardware_key(current.machine), current.scenario.name
    candidates = [e for e in found if e.hardware == key and e.session.scenario.name == name
                  and e.session.created_at < current.created_at]
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
    with plt.rc_context(NO_MATHTEXT):
        return _trend_plot(sessions, out)


def _trend_plot(sessions: list[Session], out: Path) -> Path:
    names = sorted({r.name for s in sessions for r in s.runs if r.metrics is not None})
    fig, ax = plt.subplots(figsize=(9, 4))
    for name in names:
        points = [(s.created_at, r.metrics.ms_per_step.p50, r.metrics.ms_per_step.p99)  # type: ignore[union-attr]
                  for s in sessions for r in s.runs if r.name == name and r.metrics is not None]
        if not points:
            continue
        when, p50, p99 = zip(*points)
        line = ax.plot(when, p50, marker="o", label=plot_text(f"{name} p50"))[0]
        ax.plot(when, p99, marker=".", linestyle=":", color=line.get_color(), label=plot_text(f"{name} p99"))
    # Software is a shown dimension: a vertical line where it changed, labelled with what changed.
    for session, row in zip(sessions, trend_rows(sessions)):
        if row.changed:
            ax.axvline(session.created_at, color="#7F7F7F", linewidth=0.8)
            ax.annotate("\n".join(plot_text(c) for c in row.changed), (session.created_at, 1.0),
                        xycoords=("data", "axes fraction"), fontsize=6, rotation=90, va="top", ha="right", color="#555555")
    budget = sessions[-1].scenario.frame_budget_ms if sessions else 80.0
    ax.axhline(budget, color="#D62728", linestyle="--", label="budget")
    ax.set_ylabel("ms per step")
    key = hardware_key(sessions[-1].machine) if sessions else "?"
    first = software_of(sessions[0]) if sessions else {}
    ax.set_title(f"{len(sessions)} sessions on hardware {key}; software at start: "
                 + plot_text(", ".join(f"{k} {v}" for k, v in first.items() if k in ("torch", "moshi", "CUDA"))), fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.autofmt_xdate()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")
    except OSError as exc:
        raise ResultsFileError(f"{out}: cannot write the trend plot: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return out
