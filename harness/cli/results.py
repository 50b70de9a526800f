"""`harness report`, `harness compare`, `harness history`: working with results already on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from rich.console import Console

from harness.cli.common import DECISION_STYLE, EXIT_OK, write_output
from harness.records.exits import UserError
from harness.records.text import console_text, markdown_text, plain


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from harness.records.store import RESULTS_JSON, load_session, write_session, write_session_json
    from harness.report.render import criteria_of, write_report
    from harness.verdict.endpoint import with_endpoint
    from harness.verdict.recommend import decide

    folder = Path(args.dir)
    if folder.name == "endpoint.json" or (folder.is_dir() and (folder / "endpoint.json").exists()
                                          and not (folder / "results.json").exists()):
        return _report_endpoint(folder, console)
    session = load_session(folder)
    source = folder / RESULTS_JSON if folder.is_dir() else folder
    out_dir = source.parent
    verdict = decide(session, criteria_of(session))  # the stored scenario was validated when the file was read
    endpoint = None
    if session.scenario.endpoint is not None and (out_dir / "endpoint.json").exists():
        endpoint = _load_endpoint(out_dir / "endpoint.json")  # the scenario's endpoint block, as measured
        verdict = with_endpoint(verdict, endpoint)
    try:
        html, summary = write_report(session, verdict, out_dir, endpoint=endpoint)
        if args.update_results:  # the file it read, and only that one
            session.verdict = verdict
            if source.name == RESULTS_JSON:
                write_session(session, out_dir)
            else:
                write_session_json(session, source)
    except OSError as exc:
        raise UserError(f"cannot write the report into {out_dir}: {exc.strerror or exc}") from None
    style = DECISION_STYLE.get(verdict.decision, "bold red")
    steps = "".join(f"\n  {i}. {console_text(step)}" for i, step in enumerate(verdict.next_steps, 1))
    console.print(f"[{style}]{console_text(verdict.headline)}[/]" + (f"\nnext steps, cheapest first:{steps}" if steps
                                                                    else "")
                  + f"\nreport: {console_text(html)}\nsummary: {console_text(summary)}\nfor CI: "
                  f"{console_text(out_dir / 'junit.xml')} {console_text(out_dir / 'metrics.prom')}"
                  + (f"\nupdated: {console_text(source)}" if args.update_results else ""))
    if getattr(args, "fail_on_nogo", False):
        from harness.verdict.endpoint import gate_exit
        return gate_exit(verdict)
    return EXIT_OK


def _report_endpoint(path: Path, console: Console) -> int:
    """`harness report` on a `harness endpoint` folder: report.html and summary.md again from endpoint.json."""
    from harness.records.endpoint import EndpointFileError, load_endpoint
    from harness.records.store import atomic_write_text
    from harness.report.endpoint import render_endpoint_html, summary_line
    from harness.report.exports import write_endpoint_exports

    try:
        results = load_endpoint(path)
    except EndpointFileError as exc:
        raise UserError(str(exc)) from None
    out_dir = path if path.is_dir() else path.parent
    atomic_write_text(out_dir / "report.html", render_endpoint_html(results))
    atomic_write_text(out_dir / "summary.md", summary_line(results) + "\n")
    write_endpoint_exports(results, out_dir, summary_line(results))
    console.print(f"{summary_line(results)}\nreport: {out_dir / 'report.html'}", markup=False)
    return EXIT_OK


def _no_baseline(console: Console, text: str, markdown_path: Optional[str]) -> int:
    """A missing baseline is its own loud outcome (exit 4), never a silent pass."""
    from harness.compare.regression import EXIT_NO_BASELINE

    message = f"NO BASELINE: {plain(text)} (exit {EXIT_NO_BASELINE}; nothing was compared)"
    print(f"harness: {message}", file=sys.stderr)
    console.print(message, markup=False, highlight=False)
    if markdown_path:
        write_output(Path(markdown_path), f"## Performance: NO BASELINE\n\n{markdown_text(text)}\n")
    return EXIT_NO_BASELINE


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from harness.cli.fleet_results import compare_fleet, is_fleet

    if args.paths and is_fleet(Path(args.paths[-1])):
        return compare_fleet(args, console, _compare_one)
    return _compare_one(args, console)


def _compare_one(args: argparse.Namespace, console: Console) -> int:
    from harness.compare import history
    from harness.compare.hardware import hardware_key, hardware_of
    from harness.compare.regression import ThresholdError, compare_sessions, default_thresholds, parse_threshold
    from harness.records.identity import ENDPOINT_FIELDS, FIELDS
    from harness.records.store import load_session

    try:
        thresholds = [parse_threshold(t) for t in args.threshold] if args.threshold else default_thresholds()
    except ThresholdError as exc:
        raise UserError(str(exc)) from None
    unknown = sorted(set(args.allow_difference or []) - set(FIELDS) - set(ENDPOINT_FIELDS))
    if unknown:
        raise UserError(f"--allow-difference {', '.join(unknown)}: not a measurement setting "
                        f"(one of {', '.join(FIELDS)}; for endpoint results one of {', '.join(ENDPOINT_FIELDS)})")
    if args.history and len(args.paths) != 1:
        raise UserError("with --history give only the CURRENT results")
    if not args.history and len(args.paths) != 2:
        raise UserError("give BASELINE and CURRENT (results.json files or run folders)")
    if not 0.0 < args.alpha < 0.5:
        raise UserError(f"--alpha must be within (0, 0.5), got {args.alpha}")
    current_path = Path(args.paths[-1])
    if _endpoint_only(current_path):
        if args.history:
            raise UserError(f"{current_path}: endpoint results have no history yet; give BASELINE and CURRENT")
        return _compare_endpoints(args, thresholds, Path(args.paths[0]), current_path, console)
    current = load_session(current_path)
    if args.history:
        scanned = history.scan(Path(args.history))
        _warn_skipped(scanned)
        found = history.latest_baseline(Path(args.history), current, scanned)
        if found is None:
            key = hardware_key(current.machine)
            name = current.scenario.name
            others = {e.hardware for e in scanned.entries if e.session.scenario.name == name} - {key}
            elsewhere = f"; {len(others)} other hardware key(s) have some" if others else ""
            return _no_baseline(console, f"no earlier {name} results for hardware {key} "
                                         f"({hardware_of(current.machine).describe()}) in {args.history}{elsewhere}",
                                args.markdown)
        baseline_path, baseline = found.path, found.session
    else:
        baseline_path = Path(args.paths[0])
        if not baseline_path.exists():
            return _no_baseline(console, f"baseline {baseline_path} does not exist", args.markdown)
        baseline = load_session(baseline_path)
    comparison = compare_sessions(baseline, current, thresholds, args.alpha, str(baseline_path),
                                  str(current_path), allow_other_machine=args.allow_other_machine,
                                  allow_differences=set(args.allow_difference or []))
    if not args.history:
        comparison = _with_endpoints(args, thresholds, baseline_path, current_path, comparison)
    return _show(args, comparison, console)


def _endpoint_file(path: Path) -> Optional[Path]:
    if path.name == "endpoint.json":
        return path
    return path / "endpoint.json" if path.is_dir() and (path / "endpoint.json").exists() else None


def _endpoint_only(path: Path) -> bool:
    """`harness endpoint`'s folder (or its endpoint.json): no results.json beside it."""
    return _endpoint_file(path) is not None and not (path.is_dir() and (path / "results.json").exists())


def _load_endpoint(path: Path):  # noqa: ANN202 - harness.records.endpoint.EndpointResults
    from harness.records.endpoint import EndpointFileError, load_endpoint

    try:
        return load_endpoint(path)
    except EndpointFileError as exc:
        raise UserError(str(exc)) from None


def _show(args: argparse.Namespace, comparison, console: Console) -> int:  # noqa: ANN001 - a Comparison
    from harness.compare.render import markdown

    text = markdown(comparison)
    if args.markdown:
        write_output(Path(args.markdown), text)
    if args.json:
        print(comparison.model_dump_json(indent=2))
    else:
        console.print(plain(text), markup=False, highlight=False)
    return comparison.exit_code


def _compare_endpoints(args: argparse.Namespace, thresholds: list, baseline_path: Path, current_path: Path,
                       console: Console) -> int:
    """Two `harness endpoint` folders (or endpoint.json files): harness.compare.endpoint."""
    from harness.compare.endpoint import compare_endpoints

    current = _load_endpoint(current_path)
    if not baseline_path.exists():
        return _no_baseline(console, f"baseline {baseline_path} does not exist", args.markdown)
    if _endpoint_file(baseline_path) is None:
        return _no_baseline(console, f"baseline {baseline_path} holds no endpoint.json", args.markdown)
    comparison = compare_endpoints(_load_endpoint(baseline_path), current, thresholds, args.alpha,
                                   str(baseline_path), str(current_path), args.allow_other_machine,
                                   set(args.allow_difference or []))
    return _show(args, comparison, console)


def _with_endpoints(args: argparse.Namespace, thresholds: list, baseline_path: Path, current_path: Path,
                    comparison):  # noqa: ANN001, ANN202 - a Comparison
    """Scenario folders that also measured their `endpoint:` block: its rows join the runs' (one exit status)."""
    from harness.compare.endpoint import compare_endpoints, merge
    from harness.compare.regression import RunComparison

    base_file, cur_file = _endpoint_file(baseline_path), _endpoint_file(current_path)
    if base_file is None and cur_file is None:
        return comparison
    if cur_file is None:
        comparison.runs.append(RunComparison(name="endpoint", outcome="missing",
                                             note="measured in the baseline, not in the current results"))
        return comparison
    if base_file is None:
        comparison.runs.append(RunComparison(name="endpoint", outcome="no baseline",
                                             note="not in the baseline: nothing to compare with"))
        return comparison
    endpoint = compare_endpoints(_load_endpoint(base_file), _load_endpoint(cur_file), thresholds, args.alpha,
                                 str(base_file), str(cur_file), args.allow_other_machine,
                                 set(args.allow_difference or []))
    return merge(comparison, endpoint)


def _warn_skipped(scanned) -> None:  # noqa: ANN001 - harness.compare.history.Scan
    for skipped in scanned.skipped:
        print(f"harness: warning: skipped {plain(skipped.reason, keep_newlines=False)}", file=sys.stderr)


def cmd_history(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from harness.compare import history
    from harness.compare.hardware import hardware_key, hardware_of
    from harness.compare.regression import EXIT_NO_BASELINE
    from harness.records.store import load_session

    folder = Path(args.dir)
    if args.action in ("add", "key"):
        if not args.results:
            raise UserError(f"history {args.action} needs RESULTS (a results.json or run folder)")
        if args.action == "key":
            machine = load_session(Path(args.results)).machine
            print(hardware_key(machine))
            print(hardware_of(machine).describe(), file=sys.stderr)
            return EXIT_OK
        from harness.cli.fleet_results import history_add_fleet, is_fleet

        if is_fleet(Path(args.results)):  # one entry per machine, each under its own hardware key
            added = history_add_fleet(Path(args.results), lambda r: history.add(r, folder))
        else:
            added = [history.add(Path(args.results), folder)]
        for entry in added:
            console.print(("added: " if entry.new else "already in the history (same results): ")
                          + console_text(entry.path), highlight=False)
        return EXIT_OK
    scanned = history.scan(folder, args.hardware, args.scenario)
    _warn_skipped(scanned)
    found = scanned.entries
    if not found:
        # Nothing recorded for this hardware yet: the same "no baseline" exit as compare, so CI can tell a
        # first night from an error.
        print(f"harness: no results in {folder}" + (f" for hardware {args.hardware}" if args.hardware else "")
              + (f" of scenario {args.scenario}" if args.scenario else "") + f" (exit {EXIT_NO_BASELINE})",
              file=sys.stderr)
        return EXIT_NO_BASELINE
    keys = {e.hardware for e in found}
    if len(keys) > 1:
        newest = found[-1].hardware
        console.print(f"{console_text(folder)} holds {len(keys)} machines ({', '.join(sorted(keys))}); showing the "
                      f"newest ({newest}); choose another with --hardware")
        found = [e for e in found if e.hardware == newest]
    sessions = [e.session for e in found]
    rows = history.trend_rows(sessions)
    runs = sorted({name for row in rows for name in row.p50_ms})
    table = Table(title=f"hardware {found[-1].hardware}: p50 ms per session, software as recorded")
    for column in ["when", "torch", "moshi", "CUDA", "harness", *runs, "software changed"]:
        table.add_column(console_text(column))
    for row in rows:
        table.add_row(row.when, *(console_text(row.software.get(k, "-")) for k in ("torch", "moshi", "CUDA", "harness")),
                      *(f"{row.p50_ms[n]:.1f}" if n in row.p50_ms else "-" for n in runs),
                      console_text("; ".join(row.changed)))
    console.print(table)
    if args.action == "trend":
        out = history.trend_plot(sessions, Path(args.out) if args.out else folder / "trend.png")
        console.print(f"trend of {len(found)} sessions: {console_text(out)}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="re-render report.html and summary.md from a results folder",
                            description="Re-render DIR/report.html and DIR/summary.md from DIR/results.json alone "
                                        "(verdict, validity and playback are recomputed from the raw samples).")
    report.add_argument("dir", help="a results folder (or its results.json)")
    report.add_argument("--update-results", action="store_true",
                        help="also store the recomputed verdict back into results.json")
    report.add_argument("--fail-on-nogo", action="store_true",
                        help="exit 3 when the verdict is NO-GO, 8 when it is INCONCLUSIVE or RE-RUN (a CI gate on "
                             "results measured elsewhere)")
    report.set_defaults(handler=cmd_report)

    compare = sub.add_parser(
        "compare", help="regression check: BASELINE against CURRENT results (exit 1 on a regression)",
        description="Compare two results (results.json files or run folders, or endpoint.json files or `harness "
                    "endpoint` folders), run by run. For each threshold the "
                    "relative change gets an interval: from the per-process statistics (Welch t on logs) when both "
                    "sides ran >= 3 worker processes (scenario `repeat`), else from a circular block bootstrap of "
                    "the frames that keeps their autocorrelation. A run regresses when the lower bound of its "
                    "slowdown exceeds the threshold; when the interval is wider than the threshold the outcome is "
                    "'inconclusive' (the threshold is below this machine's noise). Runs whose measurement settings "
                    "differ are refused as not comparable, naming the fields; other hardware is refused unless "
                    "--allow-other-machine. Endpoint results (harness.compare.endpoint) are judged per load and "
                    "metric: packet interval (every threshold, callers' gap series), first audio and time to "
                    "handshake (p50/mean thresholds, >= 3 callers a side), deficit, drift and underrun (the change "
                    "as a share of the SLO's allowance), failed callers (kept in the denominator); a scenario folder "
                    "with both files is judged on both, one exit status.",
        epilog="examples:\n  harness compare reports/base reports/latest --threshold p50:5% --threshold p99:10%\n"
               "  harness compare --history reports/history reports/latest --markdown summary.md\n"
               "  harness compare reports/batch1 reports/batch4 --allow-difference batch_size\n"
               "  harness compare reports/endpoint-a reports/endpoint-b --threshold p50:5%  # endpoint.json\n"
               "exit status (the first that applies):\n"
               "  1  regression: a run is slower past its threshold, or measured before and fails now\n"
               "  5  not comparable: measurement settings or hardware differ, or a baseline run is gone\n"
               "  4  no baseline: no baseline file, no earlier results of the scenario on this hardware in\n"
               "     the history, or a run that is new in CURRENT\n"
               "  6  inconclusive: a threshold is below the measured noise\n"
               "  7  not judged: a threshold's statistic could not be estimated (too few frames for it, or\n"
               "     samples that are NaN, infinite, negative or empty); the defaults skip what the frames\n"
               "     cannot judge and say so, a --threshold you give must be judged\n"
               "  0  no regression\n"
               "  2  invalid input",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("paths", nargs="+", metavar="RESULTS", help="BASELINE CURRENT, or CURRENT with --history")
    compare.add_argument("--threshold", action="append", metavar="STAT:PCT%",
                         help=f"effect-size threshold, repeatable (default: {' '.join(('p50:10%%', 'p99:20%%'))})")
    compare.add_argument("--alpha", type=float, default=0.01,
                         help="each bound of the interval holds with confidence 1 - alpha (default 0.01)")
    compare.add_argument("--history", metavar="DIR", help="baseline = the newest earlier results of the same "
                                                          "scenario on the same hardware in this history folder")
    compare.add_argument("--allow-other-machine", action="store_true",
                         help="compare results of different hardware (a warning instead of a refusal)")
    compare.add_argument("--allow-difference", action="append", metavar="FIELD",
                         help="compare although this measurement setting differs (e.g. batch_size), repeatable")
    compare.add_argument("--markdown", metavar="FILE", help="also write the markdown summary here (CI step summary)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.set_defaults(handler=cmd_compare)

    hist = sub.add_parser("history", help="keep results by machine hardware; list them or plot their trend",
                          description="Results are kept per hardware (CPU model, cores, RAM, GPUs), whatever the "
                                      "software versions; `list` and `trend` show the software of each session "
                                      "and where it changed. list and trend exit 4 when nothing matches.")
    hist.add_argument("action", choices=["add", "list", "trend", "key"],
                      help="add RESULTS to the history, list the sessions, list them and plot the trend, or print "
                           "the hardware key of RESULTS")
    hist.add_argument("results", nargs="?", help="results.json or run folder (for add and key)")
    hist.add_argument("--dir", default="reports/history", help="history folder (default reports/history)")
    hist.add_argument("--hardware", "--fingerprint", dest="hardware",
                      help="hardware key or a prefix of it (default: the newest in the folder)")
    hist.add_argument("--scenario", help="scenario name")
    hist.add_argument("--out", help="trend plot file (default: trend.png in the --dir folder)")
    hist.set_defaults(handler=cmd_history)
