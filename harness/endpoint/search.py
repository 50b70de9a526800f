"""The largest load whose callers all meet the SLO: 1, 2, 4, ... until a size fails or the maximum passes, then
bisection between the last size that passed and the first that failed (as the lockstep capacity search does).

What grows is either callers against one endpoint (`sessions`) or server processes of a stock deployment, one call
each on its own port (`servers`). A server found to serve one call at a time stops the sessions search at once: a
second caller can only queue, so more callers cannot pass. A size that failed while the load generator fell behind
(harness.endpoint.client) is limited by the load generator, and the search says so instead of blaming the server.
"""

from __future__ import annotations

from typing import Callable, Optional

from harness.records.endpoint import LoadRun, SearchResult

Probe = Callable[[int], LoadRun]


def search(what: str, probe: Probe, maximum: int, on_run: Optional[Callable[[LoadRun], None]] = None
           ) -> tuple[SearchResult, list[LoadRun]]:
    runs: dict[int, LoadRun] = {}
    order: list[int] = []

    def measure(size: int) -> bool:
        run = probe(size)
        runs[size] = run
        order.append(size)
        if on_run is not None:
            on_run(run)
        return run.passed

    passed, failed = 0, None
    size = 1
    serial = False
    while size <= maximum:
        if measure(size):
            passed = size
            size *= 2
        else:
            failed = size
            serial = bool(runs[size].one_call_at_a_time)
            break
    if failed is None and passed < maximum and size > maximum:
        if measure(maximum):
            passed = maximum
        else:
            failed = maximum
    while failed is not None and not serial and failed - passed > 1:
        middle = (passed + failed) // 2
        if measure(middle):
            passed = middle
        else:
            failed = middle
    if serial:
        limited = "one call at a time: the server holds one lock for a whole call, a second caller queues"
    elif failed is not None and runs[failed].limited_by_client:
        health = runs[failed].client
        limited = (f"the load generator at {failed}, not the server: {health.note if health else 'it fell behind'}; "
                   "spread the callers over more processes (--client-processes)")
    elif failed is None:
        limited = f"the maximum tried ({maximum}) passed"
    else:
        failures = [f for c in runs[failed].callers for f in c.slo_failures]
        limited = f"SLO at {failed}: {failures[0] if failures else 'failed'}"
    result = SearchResult(what="servers" if what == "servers" else "sessions", largest_passing=passed,
                          first_failing=failed, limited_by=limited, probes=order)
    return result, [runs[s] for s in order]
