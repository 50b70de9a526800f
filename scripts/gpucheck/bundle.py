"""At most 8 files of at most 16 MiB, flat in --out: what the lent machine brings back (two folders deep, 8 files).

gpu-check.json   the step log (budgets, times, status, reasons, commands, package versions, the fastest run)
gpu-check.log    everything the steps printed
summary.md       scripts/gpu-table's tables and the step log
results.json     every single-configuration run, merged into one session (harness's schema; its verdict)
report.html      harness's report of that session
capacity-results.json   the capacity search's session
bundle.tar.gz    the work folder: every results folder (logs, csv, reports), probe.json, pytest's junit xml, endpoint
"""

from __future__ import annotations

import shutil
import sys
import tarfile
from pathlib import Path

from gpucheck.core import CONSOLE_LOG, REPO, STEP_LOG, GpuCheck, Step

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
TARBALL = "bundle.tar.gz"
_NOT_BUNDLED = {"site", "__pycache__"}  # installed wheels: they came with the call


def _fallback_summary(check: GpuCheck) -> str:
    """When gpu-table cannot run (no pydantic: the wheels step failed), the step log alone, from the standard library."""
    lines = ["# gpu-check", "", "scripts/gpu-table could not run here; the step log:", "",
             "| step | budget s | took s | status | reason |", "|---|---:|---:|---|---|"]
    for s in check.steps:
        lines.append(f"| {s.name} | {s.budget_s:.0f} | {s.seconds if s.seconds is not None else '-'} | {s.status} | "
                     f"{(s.reason or '; '.join(s.notes)).replace('|', '/')[:300]} |")
    return "\n".join(lines) + "\n"


def _members(work: Path, left_out: set[Path]) -> list[Path]:
    found = []
    for path in sorted(work.rglob("*")):
        rel = path.relative_to(work)
        if path.is_file() and not path.is_symlink() and not (_NOT_BUNDLED & set(rel.parts)) and path not in left_out:
            found.append(path)
    return found


def _tarball(work: Path, target: Path) -> list[str]:
    """The work folder as a gzipped tar under the size limit; the largest files are left out until it fits (at
    once those four times the limit: model weights written by mistake are not worth compressing)."""
    left_out = {p for p in _members(work, set()) if p.stat().st_size > 4 * MAX_FILE_BYTES}
    while True:
        members = _members(work, left_out)
        with tarfile.open(target, "w:gz") as tar:
            for path in members:
                tar.add(path, arcname=str(Path("gpu-check") / path.relative_to(work)), recursive=False)
        if target.stat().st_size <= MAX_FILE_BYTES or not members:
            return [str(p.relative_to(work)) for p in sorted(left_out)]
        left_out.add(max(members, key=lambda p: p.stat().st_size))


def _pick(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def bundle(check: GpuCheck) -> list[Path]:
    work, out = check.work, check.out
    out.mkdir(parents=True, exist_ok=True)
    step = Step(name="bundle", budget_s=check.preset.reserve_s, status="running",
                started_s=round(check.elapsed(), 1))
    check.steps.append(step)
    check.say(f"bundle: merging and writing at most {MAX_FILES} files into {out}")
    limit = max(check.total_s - check.elapsed() - 5, 20.0)
    rc, timed_out = check.sh(step, [sys.executable, str(REPO / "scripts" / "gpu-table"), str(work), "--merge-into",
                                    str(work / "merged"), "--markdown", str(work / "summary.md")], limit,
                             stdout_file=work / "gpu-table.out")
    check.finish(step, rc, timed_out, "gpu-table")
    if not (work / "summary.md").is_file():
        (work / "summary.md").write_text(_fallback_summary(check), encoding="utf-8")
    singles = sorted(p for p in (work / "runs").glob("*/results.json") if p.parent.name != "capacity")
    first = singles[0].parent if singles else work / "runs"
    copies = {"summary.md": work / "summary.md",
              "results.json": _pick(work / "merged" / "results.json", first / "results.json"),
              "report.html": _pick(work / "merged" / "report.html", first / "report.html"),
              "capacity-results.json": _pick(work / "runs" / "capacity" / "results.json")}
    written = []
    for name, source in copies.items():
        if source is not None:
            shutil.copyfile(source, out / name)
            written.append(out / name)
    left_out = _tarball(work, out / TARBALL)
    if left_out:
        step.notes.append("left out of the tarball (too large): " + ", ".join(left_out))
    written.append(out / TARBALL)
    if step.status == "running":
        step.status = "ok"
    step.seconds = round(check.elapsed() - (step.started_s or 0), 1)
    too_big = [p.name for p in written if p.stat().st_size > MAX_FILE_BYTES]
    if too_big:
        step.notes.append(f"over {MAX_FILE_BYTES // 2**20} MiB (will not come back): {', '.join(too_big)}")
    check.facts["bundle"] = {p.name: p.stat().st_size for p in written}
    check.say(f"bundle: {step.status} in {step.seconds:.0f} s; gpu-check took {check.elapsed():.0f} s in all")
    check.write_log()
    shutil.copyfile(work / STEP_LOG, out / STEP_LOG)
    check.log.flush()
    shutil.copyfile(work / CONSOLE_LOG, out / CONSOLE_LOG)
    written += [out / STEP_LOG, out / CONSOLE_LOG]
    if len(written) > MAX_FILES:
        check.say(f"warning: {len(written)} files in {out}; only {MAX_FILES} come back")
    return written
