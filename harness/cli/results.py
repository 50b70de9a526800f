"""`harness report`, `harness compare`, `harness history`: working with results already on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli.common import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from harness.records.store import ResultsFileError, load_session, write_session
    from harness.report.render import criteria_of, write_report
    from harness.verdict.recommend import decide

    folder = Path(args.dir)
    try:
        session = load_session(folder)
    except ResultsFileError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out_dir = folder if folder.is_dir() else folder.parent
    verdict = decide(session, criteria_of(session))
    html, summary = write_report(session, verdict, out_dir)
    if args.update_results:
        session.verdict = verdict
        write_session(session, out_dir)
    style = "bold green" if verdict.go else "bold red"
    console.print(f"[{style}]{escape(verdict.headline)}[/]\nreport: {html}\nsummary: {summary}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from harness.compare import history
    from harness.compare.regression import (
        DEFAULT_THRESHOLDS,
        ThresholdError,
        compare_sessions,
        markdown,
        parse_threshold,
    )
    from harness.records.store import ResultsFileError, atomic_write_text, load_session

    try:
        thresholds = [parse_threshold(t) for t in (args.threshold or DEFAULT_THRESHOLDS)]
        current_path = Path(args.paths[-1])
        current = load_session(current_path)
        if args.history:
            if len(args.paths) != 1:
                raise ThresholdError("with --history give only the CURRENT results")
            found = history.latest_baseline(Path(args.history), current)
            if found is None:
                console.print(f"no earlier {current.scenario.get('name')} results for machine "
                              f"{current.machine.fingerprint} in {args.history}: nothing to compare (exit 0)")
                return EXIT_OK
            baseline_path, baseline = found
        else:
            if len(args.paths) != 2:
                raise ThresholdError("give BASELINE and CURRENT (results.json files or run folders)")
            baseline_path = Path(args.paths[0])
            baseline = load_session(baseline_path)
    except (ResultsFileError, ThresholdError) as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    comparison = compare_sessions(baseline, current, thresholds, args.alpha, str(baseline_path), str(current_path))
    text = markdown(comparison)
    if args.markdown:
        atomic_write_text(Path(args.markdown), text)
    if args.json:
        print(comparison.model_dump_json(indent=2))
    else:
        console.print(text, markup=False, highlight=False)
    return EXIT_RUN_FAILED if comparison.regressed else EXIT_OK


def cmd_history(args: argparse.Namespace, console: Console) -> int:
    from harness.compare import history
    from harness.records.store import ResultsFileError

    folder = Path(args.dir)
    if args.action == "add":
        try:
            where = history.add(Path(args.results), folder)
        except ResultsFileError as exc:
            print(f"harness: {exc}", file=sys.stderr)
            return EXIT_USAGE
        console.print(f"added: {where}")
        return EXIT_OK
    found = history.entries(folder, args.fingerprint, args.scenario)
    if not found:
        print(f"harness: no results in {folder}" + (f" for machine {args.fingerprint}" if args.fingerprint else ""),
              file=sys.stderr)
        return EXIT_USAGE
    fingerprints = {s.machine.fingerprint for _, s in found}
    if len(fingerprints) > 1:
        newest = found[-1][1].machine.fingerprint
        console.print(f"{folder} holds {len(fingerprints)} machines; plotting the newest ({newest}); "
                      "choose another with --fingerprint")
        found = [(p, s) for p, s in found if s.machine.fingerprint == newest]
    out = history.trend_plot([s for _, s in found], Path(args.out))
    console.print(f"trend of {len(found)} sessions: {out}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="re-render report.html and summary.md from a results folder",
                            description="Re-render DIR/report.html and DIR/summary.md from DIR/results.json alone "
                                        "(verdict, validity and playback are recomputed from the raw samples).")
    report.add_argument("dir", help="a results folder (or its results.json)")
    report.add_argument("--update-results", action="store_true",
                        help="also store the recomputed verdict back into results.json")
    report.set_defaults(handler=cmd_report)

    compare = sub.add_parser(
        "compare", help="regression check: BASELINE against CURRENT results (exit 1 on a regression)",
        description="Compare two results (results.json files or run folders), run by run: a one-sided "
                    "Mann-Whitney U test on the raw per-frame samples combined with effect-size thresholds. A run "
                    "regresses when it is significantly slower AND a thresholded statistic grew past its threshold; "
                    "a run that was ok and now fails is a regression too. Warns when the machines differ.",
        epilog="examples:\n  harness compare reports/base reports/latest --threshold p50:5%% --threshold p99:10%%\n"
               "  harness compare --history reports/history reports/latest --markdown summary.md\n"
               "exit status: 0 no regression, 1 regression, 2 invalid input.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("paths", nargs="+", metavar="RESULTS", help="BASELINE CURRENT, or CURRENT with --history")
    compare.add_argument("--threshold", action="append", metavar="STAT:PCT%",
                         help=f"effect-size threshold, repeatable (default: {' '.join(('p50:10%%', 'p99:20%%'))})")
    compare.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    compare.add_argument("--history", metavar="DIR", help="baseline = the newest earlier results of the same "
                                                          "scenario on the same machine in this history folder")
    compare.add_argument("--markdown", metavar="FILE", help="also write the markdown summary here (CI step summary)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.set_defaults(handler=cmd_compare)

    hist = sub.add_parser("history", help="keep results by machine fingerprint and plot their trend")
    hist.add_argument("action", choices=["add", "trend"], help="add RESULTS to the history, or plot the trend")
    hist.add_argument("results", nargs="?", help="results.json or run folder (for add)")
    hist.add_argument("--dir", default="reports/history", help="history folder (default reports/history)")
    hist.add_argument("--fingerprint", help="machine fingerprint (trend; default: the only one in the folder)")
    hist.add_argument("--scenario", help="scenario name (trend)")
    hist.add_argument("--out", default="reports/history/trend.png", help="trend plot file")
    hist.set_defaults(handler=cmd_history)
