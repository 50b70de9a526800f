"""Certify the winner, not every run: which screened configurations are measured on to the certifying length.

Every configuration is first measured briefly (the screen: 600 frames at the default 1% target, 48 s of audio at
80 ms; in general enough frames for the criteria's tail quantile, p99 at 1%, p95 at 5%, to rest on the 6 slowest
frames, and never under 100). That is enough to rank them: the p99 of 600 frames rests on its 6 slowest frames,
and a 95% interval for it runs from about the 98th to the 99.8th percentile, narrow beside the differences between
configurations that matter (dtype, compile, offload). It is far from enough to certify a 1% late share (4590
clean frames at 99% for bursts of 10), so a screened-only run is "not enough evidence" in the verdict unless it
clearly fails.

The rule, per frame measured (`serving`: runs are ranked only against runs of the same frame, as the verdict
ranks them):
- a run that could not be real time at any length is not certified: it failed, was stopped early by the worker
  (harness.contract.stopping), or more of its screened frames are late than the criteria allow (late as the early
  stop counts them: without the time the frame's threads waited for a CPU, so a disturbed machine rules nothing out);
- of the others, the one with the lowest screened tail quantile (p99 at the default 1% target) is certified (the
  frame's best), and so is every run whose tail is not shown above the best's: the block-bootstrap 95% interval of
  p99(run) / p99(best) - 1 (harness.stats.bootstrap, blocks never crossing a process) reaches down to 0. A
  configuration that is clearly slower is not measured on: however long it ran, it would rank below the best.
Runs already measured to the certifying length (resumed, a capacity search, the leader) take part as comparators
only.

What is certified, in which order (`certify: decision`, the default): the verdict recommends the first frame, in its
servers' order (harness.verdict.deploy.serving_order; a frame whose server has no kernels for this GPU after the
others, harness.verdict.recommend._choose), that has a certified run. So the frames are certified in that order
(`decision_order`) until one certifies: that decides the GO, and the later frames' best stay screened only ("not
enough evidence", with the command that settles each). `certify: every-frame` certifies the best of every frame.

The leader: when the planner predicts a step time for the runs, the predicted best of the preferred frame (`leader`:
the first frame in that order with a run predicted within the deadline, its lowest predicted p50) is measured first,
straight to the certifying length (the worker's early stop still ends it once it clearly fails); the others are
then screened, and a screened run is certified only if `choose` finds it within noise of the leader or better. A
right prediction saves the leader's second worker start (imports, weights, compile) and its screen; a leader that
is not certified is dropped as a comparator and the screen decides as if it had not been measured first.

Pure: records and stats in, decisions out; the session applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

from harness.records.config import RunConfig, Serving
from harness.records.scenario import Criteria, Scenario
from harness.records.schema import RunResult
from harness.stats.bootstrap import ratio_interval
from harness.stats.certify import clean_frames_to_certify
from harness.stats.percentiles import percentile
from harness.stats.samples import sample_problem
from harness.verdict.deploy import serving_order

TAIL_FRAMES = 6  # the screen's tail quantile rests on its this many slowest frames
SCREEN_FRAMES = 600  # the default screen at the default 1% target: p99 from its 6 slowest frames
SCREEN_FLOOR = 100  # never shorter: 10 blocks of 10 frames for the bootstrap that compares two screens
NOISE_CONFIDENCE = 0.95  # two-sided interval of the tail quantile's ratio that decides "within noise"
# A screened run's `screening` note when it would have been certified, but the GO was decided on a frame the
# verdict recommends before its own (certify: decision): the GO's next steps name it as an uncertified alternative.
DECIDED_BEFORE = "not measured on: the decision was reached on the"


@dataclass(frozen=True)
class ScreenChoice:
    name: str
    certify: bool
    note: str


def frames_to_measure(scenario: Scenario, override: Optional[int] = None) -> int:
    """The scenario's frames (or its soak duration), raised until both `min_frames` and `min_seconds` of audio
    are met, so that a run is long enough to conclude from; `--frames` is taken as given. A scenario that gives
    neither measures what certifies its criteria when no frame is late (4590 frames for 1% at 99% in bursts of
    10 frames): left at the defaults, a clean run can be GO."""
    if override is not None:
        return override
    c = scenario.criteria
    by_seconds = math.ceil(c.min_seconds * 1000.0 / scenario.frame_budget_ms - 1e-9)
    asked = scenario.measured_frames
    if asked is None:
        asked = clean_frames_to_certify(c.burst_frames, c.late_frame_target, c.confidence)
    return max(asked, c.min_frames, by_seconds)


def screens(scenario: Scenario, runs: list[RunConfig], certifying: int, *, explicit: bool) -> Optional[int]:
    """The screen's frames when this scenario screens, else None (every run measured to the certifying length).

    Not screened: `--frames` or a scenario's `frames`/`duration` (measure exactly that, as asked), `screen_frames:
    0`, `repeat` above 1 (it asks for that many full-length processes per configuration), fewer than two
    configurations to screen (nothing to choose between: the screen would only add a worker start), or a screen
    as long as the certifying length. A capacity search is never screened (it is a search of its own)."""
    if explicit or scenario.measured_frames is not None or scenario.screen_frames == 0 or scenario.repeat > 1:
        return None
    if sum(1 for run in runs if run.capacity is None) < 2:
        return None
    frames = screen_length(scenario.screen_frames, certifying, scenario.criteria)
    return frames if frames < certifying else None


def screen_quantile(criteria: Criteria) -> float:
    """The tail a screen ranks by: the quantile the criteria's late share speaks of (p99 for the default 1%, p95 for
    a 5% target): a run is real time when that quantile stays under the deadline."""
    return round(100.0 * (1.0 - criteria.late_frame_target), 6)


def default_screen_frames(criteria: Criteria) -> int:
    """Enough frames for the screen's quantile to rest on its TAIL_FRAMES slowest frames: 600 at the default 1%
    target, 120 at 5%. A fixed 600 would make a 5% scenario's screen (certifying length 922) two thirds of a full
    measurement, and a 3-configuration scenario cost more than twice one."""
    return max(SCREEN_FLOOR, math.ceil(TAIL_FRAMES / criteria.late_frame_target - 1e-9))


def screen_length(asked: Optional[int], certifying: int, criteria: Optional[Criteria] = None) -> int:
    """Frames of the screen: the scenario's `screen_frames` (unset: default_screen_frames, 600 at the default
    criteria), never more than the certifying length."""
    default = default_screen_frames(criteria or Criteria())
    return min(default if asked is None else asked, certifying)


def segments(run: RunResult) -> list[list[float]]:
    """A run's measured frames, one list per worker process (metrics.processes gives the split)."""
    m = run.metrics
    assert m is not None
    if len(m.processes) < 2:
        return [list(m.samples_ms)]
    out, at = [], 0
    for process in m.processes:
        out.append(list(m.samples_ms[at:at + process.frames]))
        at += process.frames
    return out


def cannot_certify(run: RunResult, criteria: Criteria) -> Optional[str]:
    """Why the screen already shows that `run` is not real time at any length (None: it may be)."""
    m = run.metrics
    if run.status != "ok" or m is None:
        return f"{run.status}: {run.reason}"
    problem = sample_problem(m.samples_ms)
    if problem is not None:
        return f"invalid measurement: {problem}"
    if m.stopped_early:
        return m.stopped_early
    deadline = criteria.deadline_ms(m.frame_budget_ms)
    # As the worker's early stop counts them: late without the time the frame's threads waited for a CPU, so that
    # a disturbed machine does not rule a configuration out (the verdict judges the disturbance from the record).
    waits = m.frame_cpu.run_wait_ms if m.frame_cpu is not None else []
    if len(waits) != len(m.samples_ms):
        waits = [0.0] * len(m.samples_ms)
    late = sum(1 for ms, wait in zip(m.samples_ms, waits) if ms - wait > deadline)
    share = late / len(m.samples_ms)
    if share > criteria.late_frame_target:
        waited = " without the time they waited for a CPU" if any(waits) else ""
        return (f"{late} of {len(m.samples_ms)} screened frames late (> {deadline:g} ms{waited}): {share:.1%}, above "
                f"the {criteria.late_frame_target:.0%} the criteria allow, so no length certifies it")
    return None


def _tail(run: RunResult, q: float) -> float:
    assert run.metrics is not None
    return run.metrics.ms_per_step.p99 if q == 99.0 else percentile(run.metrics.samples_ms, q)


def choose(runs: Sequence[RunResult], screened: set[str], criteria: Criteria) -> list[ScreenChoice]:
    """One choice per screened run (in the order given): certify it or not, and why. `runs` may hold runs already
    measured to the certifying length; they are compared against, never chosen."""
    choices: dict[str, ScreenChoice] = {}
    groups: dict[Serving, list[RunResult]] = {}
    for run in runs:
        why = cannot_certify(run, criteria)
        if why is None:
            groups.setdefault(run.config.serving, []).append(run)
        elif run.name in screened:
            choices[run.name] = ScreenChoice(run.name, False, f"screened only: {why}")
    q = screen_quantile(criteria)
    label = f"p{q:g}"
    for serving, members in groups.items():
        best = min(members, key=lambda r: _tail(r, q))
        for run in members:
            if run.name not in screened:
                continue
            if run is best:
                choices[run.name] = ScreenChoice(run.name, True, f"certified: the best screened {label} of the "
                                                                 f"{serving.label} ({_tail(run, q):.1f} ms)")
                continue
            ratio = ratio_interval(segments(best), segments(run), q, NOISE_CONFIDENCE)
            span = (f"{label} {_tail(run, q):.1f} ms against {best.name}'s {_tail(best, q):.1f} ms "
                    f"({ratio.estimate:+.1%}, "
                    f"{NOISE_CONFIDENCE:.0%} interval {ratio.low:+.1%} to {ratio.high:+.1%})")
            if ratio.low <= 0.0:
                choices[run.name] = ScreenChoice(run.name, True, f"certified: within the screen's noise of the best: "
                                                                 f"{span}")
            else:
                choices[run.name] = ScreenChoice(run.name, False, f"screened only: slower than {best.name} beyond "
                                                                  f"the screen's noise: {span}")
    return [choices[r.name] for r in runs if r.name in choices]


def decision_order(preset: str, servings: Iterable[Serving], runs_here: Callable[[Serving], bool]) -> list[Serving]:
    """The frames measured, in the order the verdict recommends them (harness.verdict.recommend._choose): those whose
    server runs here, in the preset's servers' order, then those whose server does not (the verdict falls back to
    the first of them only when no other frame has a certified run)."""
    present = set(servings)
    order = [s for s in serving_order(preset) if s in present]
    return [s for s in order if runs_here(s)] + [s for s in order if not runs_here(s)]


def leader(predicted: Sequence[tuple[RunConfig, float]], preset: str, deadline_ms: float,
           runs_here: Callable[[Serving], bool]) -> Optional[RunConfig]:
    """The run measured first and straight to the certifying length: of the runs with a predicted p50 (ms) within
    the deadline, the lowest of the first frame in decision order; None when no run is predicted real time (then
    every run is screened first, as without a prediction). A capacity search is never the leader."""
    fit = [(run, p50) for run, p50 in predicted if run.capacity is None and p50 <= deadline_ms]
    for serving in decision_order(preset, (run.serving for run, _ in fit), runs_here):
        return min((t for t in fit if t[0].serving is serving), key=lambda t: t[1])[0]
    return None
