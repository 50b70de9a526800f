"""Verdict records: validity, playback simulation, per-run assessment, recommendation, GO / NO-GO."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from harness.records.base import Record


class Validity(Record):
    frames: int
    measured_s: float
    enough_frames: bool
    enough_seconds: bool
    cv: float
    tail_ratio: float
    stable: bool
    late_frames: int
    late_rate: float
    late_rate_upper: float
    confidence: float
    target: float
    certified: bool
    frames_to_certify: Optional[int]  # more frames, at the observed late rate, for the bound to reach the target
    notes: list[str]

    deadline_ms: float = 0.0  # a frame later than this is late (budget less headroom)
    # The late share is certified for late frames in bursts of up to `burst_frames` frames (harness.stats.certify:
    # a Chernoff bound on a compound Poisson count of late frames); files written before certified frames as
    # independent trials (burst_frames 1) or over blocks (blocks, late_blocks: kept for those files).
    burst_frames: int = 1
    blocks: int = 0
    late_blocks: int = 0
    longest_late_run: int = 0
    longest_near_run: int = 0  # the longest run of late-or-near-late frames in one process (widens the burst)
    shown_above: bool = False  # the run shows the late share above the target: evidence of a miss
    frame_budget_ms: float = 0.0

    @property
    def burst_seconds(self) -> float:
        """The burst assumption in seconds of audio."""
        return self.burst_frames * self.frame_budget_ms / 1000.0

    @property
    def valid(self) -> bool:
        return self.enough_frames and self.enough_seconds


class BufferOutcome(Record):
    buffer_ms: float
    underruns: int
    silence_ms: float


class Playback(Record):
    frame_ms: float
    outcomes: list[BufferOutcome]
    smallest_clean_buffer_ms: Optional[float]  # None: every buffer tried underruns
    first_frame_latency_ms: float  # from the end of the first frame's audio to its output

    def at(self, buffer_ms: float) -> Optional[BufferOutcome]:
        return next((o for o in self.outcomes if o.buffer_ms == buffer_ms), None)


# One configuration's outcome (MLPerf keeps "the measurement is not valid" apart from "the system missed"):
# real time: certified; not real time: the evidence shows a miss (p99, underruns, a late share above the target,
# memory); not enough evidence: it may be real time, more frames would settle it; not faithful: fast enough, but
# its output moved too far from the bf16 reference's (harness.verdict.fidelity); re-run: only a measured
# disturbance of the machine explains the failure; failed / skipped / invalid: nothing to judge.
Outcome = Literal["real time", "not real time", "not enough evidence", "not faithful", "re-run", "failed", "skipped",
                  "invalid", ""]

# The headline: GO (a configuration is certified real time), NO-GO (the evidence shows none is), INCONCLUSIVE (none
# is certified but one may be: more evidence settles it), RE-RUN (a measured disturbance of the machine).
Decision = Literal["GO", "NO-GO", "INCONCLUSIVE", "RE-RUN"]


class RunAssessment(Record):
    name: str
    status: str
    realtime: bool = False
    outcome: Outcome = Field(default="", description="real time / not real time / not enough evidence / re-run / ...")
    frames_needed: Optional[int] = Field(default=None, description="not enough evidence: the frames one run must "
                                                                   "measure to settle it (its `--frames N`), at the "
                                                                   "observed late share")
    settle: str = Field(default="", description="not enough evidence: the exact command that settles it")
    reasons: list[str] = Field(default_factory=list, description="why it is not real time (empty when it is)")
    flags: list[str] = Field(default_factory=list, description="throttling, drift, leaks: worth knowing either way")
    memory_fraction: Optional[float] = None
    memory_of: str = ""
    validity: Optional[Validity] = None
    playback: Optional[Playback] = None
    disturbed_frames: int = Field(default=0, description="frames the machine kept the worker from running")
    rerun: bool = Field(default=False, description="failed only for the disturbance: re-run, not judged")


class Confirmation(Record):
    """A GO found at pace: fast, run again at pace: realtime (each frame when its audio has arrived, as in a call)."""

    run: str = Field(description="the recommended run that was confirmed")
    confirmed: bool
    frames: int = 0
    p99_ms: Optional[float] = None
    underruns: int = 0
    late_frames: int = 0
    late_start_frames: int = 0
    reasons: list[str] = Field(default_factory=list, description="why it did not hold at real-time pace")


class Deployment(Record):
    run: str
    summary: str
    deployable_by: str = ""
    frame: str = Field(default="", description="the frame measured (serving): the server whose work it carries")
    software_note: str = Field(default="", description="why that server's software needs changing for this GPU")
    settings: dict[str, str]
    env: dict[str, str]
    moshi: list[str]
    p99_ms: float
    buffer_ms: float
    fidelity: str = Field(default="", description="what was and was not measured of the output against the bf16 "
                                                  "reference (harness.verdict.fidelity)")


class Ranking(Record):
    """Real-time runs of one frame (serving), fastest p99 first: only these are ranked against each other."""

    serving: str
    runs: list[str]
    note: str = Field(default="", description="why this frame was not the one recommended, when it was not")


class EndpointFinding(Record):
    """The served endpoint's SLO, beside the in-process verdict (harness.verdict.endpoint says how they join)."""

    go: bool
    summary: str
    reasons: list[str] = Field(default_factory=list)


class Verdict(Record):
    go: bool
    headline: str
    reasons: list[str]
    decision: Decision = Field(default="NO-GO", description="GO / NO-GO / INCONCLUSIVE / RE-RUN; `go` is "
                                                            "decision == GO")
    next_steps: list[str] = Field(default_factory=list, description="Recommendations: the cheapest changes "
                                                                    "predicted to settle or pass, best first")
    recommended: Optional[Deployment] = None
    ranked: list[str] = Field(default_factory=list, description="the recommended frame's real-time runs, best first")
    rankings: list[Ranking] = Field(default_factory=list, description="every frame's real-time runs, ranked apart")
    assessments: list[RunAssessment] = Field(default_factory=list)
    latency: list["LatencyBudget"] = Field(default_factory=list, description="mouth-to-ear estimate per ok run")
    serving: list["ServingComparison"] = Field(default_factory=list)
    advice: list[str] = Field(default_factory=list, description="changes the measurements say are worth making")
    rerun: list[str] = Field(default_factory=list, description="runs the machine disturbed: re-run them to judge")
    confirmation: Optional[Confirmation] = Field(default=None, description="a GO at pace fast run again at "
                                                                           "real-time pace")
    endpoint: Optional[EndpointFinding] = Field(default=None, description="the served endpoint's SLO (a scenario's "
                                                                          "`endpoint:` block); `go` is the in-process "
                                                                          "verdict alone")

    @model_validator(mode="before")
    @classmethod
    def _decision_of_older_files(cls, data: object) -> object:
        """Files written before `decision` existed: GO, RE-RUN and NO-GO read from `go` and the headline."""
        if isinstance(data, dict) and "decision" not in data:
            headline = str(data.get("headline", ""))
            data = {**data, "decision": "GO" if data.get("go") else
                    "RE-RUN" if headline.startswith("RE-RUN") else "NO-GO"}
        return data


class LatencyTerm(Record):
    name: str
    ms: float
    source: str = Field(description="measured, the model's design, the verdict's choice, or declared by the user")


class LatencyBudget(Record):
    """Mouth-to-ear estimate for one run: each term with where it comes from, against the target."""

    run: str
    terms: list[LatencyTerm]
    total_ms: float
    target_ms: float
    within_target: bool


class ServingComparison(Record):
    """The same configuration as moshi's core and as PersonaPlex's server frame, side by side (p50 ms)."""

    core_run: Optional[str] = None
    server_run: Optional[str] = None
    core_total_ms: Optional[float] = None
    server_total_ms: Optional[float] = None
    core_non_lm_ms: Optional[float] = None  # total minus LMGen.step: Mimi, and in the server frame its extras
    server_non_lm_ms: Optional[float] = None
    duplicate_mimi_ms: Optional[float] = None  # other_encode + other_decode: what dropping other_mimi saves
    extras_ms: dict[str, float] = Field(default_factory=dict)  # every server-only stage

Verdict.model_rebuild()  # its latency and serving fields name classes defined after it
