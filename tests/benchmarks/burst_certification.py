"""Does the late-frame certificate hold when late frames come in bursts? A seeded simulation.

Each simulated run is a stationary series of late/on-time flags: on-time stretches of geometric length, then a
burst of `burst` late frames, tuned so that the long-run late share is `share` (2% in bursts of 10: a burst
starts after 490 on-time frames on average). A run starts at a random point of that process, not at the start
of an on-time stretch. The share of runs the certificate accepts at 1% / 99% is the share of runs that would
be GO although 2% of their frames are late: it must stay at or below 1 - confidence.

    python -m tests.benchmarks.burst_certification        # prints the figures (2000 runs per case)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from harness.stats.certify import certify_late_share, clean_frames_to_certify

TARGET, CONFIDENCE = 0.01, 0.99


def bursty_flags(frames: int, share: float, burst: int, rng: np.random.Generator) -> np.ndarray:
    """Late flags of a stationary on/off process: late bursts of exactly `burst` frames, late share `share`."""
    mean_gap = burst * (1.0 - share) / share  # on-time frames between bursts, on average
    out = np.zeros(frames, dtype=bool)
    position = 0
    if rng.random() < share:  # stationary start: inside a burst, at a uniform position
        inside = int(rng.integers(1, burst + 1))
        out[:inside] = True
        position = inside
    while position < frames:
        position += int(rng.geometric(1.0 / (mean_gap + 1.0))) - 1  # on-time stretch (mean `mean_gap`)
        out[position:position + burst] = True
        position += burst
    return out


def independent_flags(frames: int, share: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(frames) < share


@dataclass(frozen=True)
class Case:
    label: str
    frames: int
    assumed_burst: int  # 1: frames as independent trials (the rule before)


def certified_share(flags_of, case: Case, runs: int, seed: int) -> float:  # noqa: ANN001 - (frames, rng) -> flags
    rng = np.random.default_rng(seed)
    certified = 0
    for _ in range(runs):
        flags = flags_of(case.frames, rng)
        certified += certify_late_share([flags], case.assumed_burst, TARGET, CONFIDENCE).certified
    return certified / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    default_frames = clean_frames_to_certify(10, TARGET, CONFIDENCE)
    before = Case("before: frames independent, 459 frames", clean_frames_to_certify(1, TARGET, CONFIDENCE), 1)
    before_long = Case(f"before: frames independent, {default_frames} frames", default_frames, 1)
    after = Case(f"after: blocks of 10, {default_frames} frames (the new default)", default_frames, 10)
    series = {
        "bursty, true late share 2% in bursts of 10": lambda n, rng: bursty_flags(n, 0.02, 10, rng),
        "bursty, true late share 1% in bursts of 10 (the boundary)": lambda n, rng: bursty_flags(n, 0.01, 10, rng),
        "independent, none late (clean)": lambda n, rng: independent_flags(n, 0.0, rng),
        "independent, true late share 0.1%": lambda n, rng: independent_flags(n, 0.001, rng),
        "independent, true late share 2%": lambda n, rng: independent_flags(n, 0.02, rng),
    }
    print(f"share of {args.runs} simulated runs certified 'P(late) <= {TARGET:.0%} at {CONFIDENCE:.0%}' "
          f"(seed {args.seed})")
    for name, flags_of in series.items():
        print(f"\n{name}")
        for case in (before, before_long, after):
            share = certified_share(flags_of, case, args.runs, args.seed)
            print(f"  {case.label:<52} {share:7.2%}")


if __name__ == "__main__":
    main()
