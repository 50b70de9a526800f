"""Does the late-frame certificate hold, and can a good run reach it? A seeded simulation (harness.stats.certify).

Each simulated run is a stationary series: late bursts (of a fixed length, or Markov: geometric lengths) placed
at random with a given long-run late share, isolated independent late frames, or AR(1) step times against a
deadline. A run starts at a random point of its process. For each series it prints the share of runs certified
"P(late) <= 1% at 99%":

- where the true late share is at or above the target, that share is the FALSE certification rate (a GO that
  should not be): it must stay at or below 1% for bursts up to the stated length (10 frames);
- where the true share is below the target (isolated late frames at a tenth or a twentieth of it, clean runs), it
  is the rate at which a good run REACHES the certificate, at 1x, 2x and 3x the clean length.

"before" is the rule this replaced (blocks of max(10, longest late run, Politis-White length), a block late when
any frame in it is, Clopper-Pearson on the blocks, 4590 frames); "after" is harness.stats.certify.

    python -m tests.benchmarks.burst_certification            # 2000 runs per case (about a minute)
    python -m tests.benchmarks.burst_certification --markdown # the table of docs/measurement.md
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import lfilter
from scipy.stats import beta, norm

from harness.stats.bootstrap import block_length
from harness.stats.certify import certify_late_share, certify_step_times, clean_frames_to_certify, late_runs

TARGET, CONFIDENCE, BURST = 0.01, 0.99, 10
DEADLINE_MS = 72.0

# A series: (frames, rng) -> step times in ms (late = above DEADLINE_MS).
Series = Callable[[int, np.random.Generator], np.ndarray]


def _from_flags(flags: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step times for late flags: on time well under the deadline (40 +- 2 ms), late just over it."""
    on_time = 40.0 + 2.0 * rng.standard_normal(flags.size)
    return np.where(flags, DEADLINE_MS + 3.0, on_time)


def burst_flags(frames: int, share: float, length_of: Callable[[np.random.Generator], int],
                mean_length: float, rng: np.random.Generator) -> np.ndarray:
    """A stationary on/off process: on-time stretches of geometric length, then a late burst of `length_of()`
    frames; long-run late share `share`. The run starts at a random point (a burn-in of the process)."""
    mean_gap = mean_length * (1.0 - share) / share
    burn = int(rng.integers(0, int(4 * (mean_gap + mean_length)) + 1))
    out = np.zeros(frames + burn, dtype=bool)
    position = 0
    while position < out.size:
        position += int(rng.geometric(1.0 / (mean_gap + 1.0))) - 1
        length = length_of(rng)
        out[position:position + length] = True
        position += length
    return out[burn:]


def fixed_bursts(share: float, length: int) -> Series:
    return lambda n, rng: _from_flags(burst_flags(n, share, lambda _: length, float(length), rng), rng)


def markov_bursts(share: float, mean_length: float) -> Series:
    """Burst lengths geometric with mean `mean_length` (a two-state Markov chain): a few are longer than 10."""
    return lambda n, rng: _from_flags(burst_flags(n, share, lambda r: int(r.geometric(1.0 / mean_length)),
                                                  mean_length, rng), rng)


def isolated(share: float) -> Series:
    return lambda n, rng: _from_flags(rng.random(n) < share, rng)


def ar1(rho: float, share: float) -> Series:
    """AR(1) step times (stationary, unit variance scaled to 8 ms) whose level crosses the deadline `share` of
    the time: late frames as the tail of a dependent series, no burst structure imposed."""
    sd = 8.0
    mean = DEADLINE_MS - sd * float(norm.ppf(1.0 - share))

    def make(n: int, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(n + 2000) * math.sqrt(1.0 - rho * rho)
        x = lfilter([1.0], [1.0, -rho], noise)[2000:]
        return mean + sd * x
    return make


def block_rule_certified(late: np.ndarray) -> bool:
    """The rule before (kept here to print the comparison): blocks of max(10, longest late run, Politis-White
    length of the late flags), a block late when any frame in it is, Clopper-Pearson on the late-block share."""
    longest = max(late_runs(late), default=0)
    dependence = math.ceil(block_length(late.astype(float))) if late.any() else 1
    b = max(BURST, longest, dependence)
    full = late.size // b
    blocks = full + int(late[full * b:].any())
    late_blocks = int(late[:full * b].reshape(full, b).any(axis=1).sum()) + int(late[full * b:].any())
    if late_blocks >= blocks:
        return False
    return float(beta.ppf(CONFIDENCE, late_blocks + 1, blocks - late_blocks)) <= TARGET


@dataclass(frozen=True)
class Row:
    label: str
    series: Series
    true_share: float


def rows() -> list[Row]:
    return [
        Row("bursts of 10 frames, 1% late (the boundary)", fixed_bursts(0.01, 10), 0.01),
        Row("bursts of 10 frames, 2% late", fixed_bursts(0.02, 10), 0.02),
        Row("bursts of 5 frames, 1% late", fixed_bursts(0.01, 5), 0.01),
        Row("bursts of 30 frames, 1% late (3x the stated burst)", fixed_bursts(0.01, 30), 0.01),
        Row("bursts of 60 frames, 1% late (6x the stated burst)", fixed_bursts(0.01, 60), 0.01),
        Row("Markov bursts, mean 3 frames, 1% late", markov_bursts(0.01, 3.0), 0.01),
        Row("Markov bursts, mean 5 frames, 1% late", markov_bursts(0.01, 5.0), 0.01),
        Row("AR(1) step times, rho 0.9, 1% late", ar1(0.9, 0.01), 0.01),
        Row("AR(1) step times, rho 0.99, 1% late", ar1(0.99, 0.01), 0.01),
        Row("isolated late frames, 0.1%", isolated(0.001), 0.001),
        Row("isolated late frames, 0.05%", isolated(0.0005), 0.0005),
        Row("clean (none late)", isolated(0.0), 0.0),
    ]


def certified_share(series: Series, frames: int, runs: int, seed: int, rule: str = "after") -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(runs):
        steps = series(frames, rng)
        if rule == "before":
            hits += block_rule_certified(steps > DEADLINE_MS)
        else:
            hits += certify_step_times([steps], DEADLINE_MS, BURST, TARGET, CONFIDENCE).certified
    return hits / runs


def certified_flags_share(flags_of: Callable[[int, np.random.Generator], np.ndarray], frames: int, runs: int,
                          seed: int) -> float:
    """The certificate on late flags alone (no step times): what the unit tests use."""
    rng = np.random.default_rng(seed)
    return sum(certify_late_share([flags_of(frames, rng)], BURST, TARGET, CONFIDENCE).certified
               for _ in range(runs)) / runs


def table(runs: int, seed: int) -> list[tuple[str, float, list[float]]]:
    clean = clean_frames_to_certify(BURST, TARGET, CONFIDENCE)
    out = []
    for i, row in enumerate(rows()):
        before = certified_share(row.series, 4590, runs, seed + i, rule="before")
        after = [certified_share(row.series, clean * k, runs, seed + 100 * k + i) for k in (1, 2, 3)]
        out.append((row.label, before, after))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    clean = clean_frames_to_certify(BURST, TARGET, CONFIDENCE)
    results = table(args.runs, args.seed)
    if args.markdown:
        print(f"| series (share of {args.runs} runs certified at 1%/99%) | before, 4590 frames | after, {clean} | "
              f"after, {2 * clean} | after, {3 * clean} |")
        print("|---|---:|---:|---:|---:|")
        for label, before, after in results:
            print(f"| {label} | {before:.2%} | " + " | ".join(f"{a:.2%}" for a in after) + " |")
        return
    print(f"share of {args.runs} simulated runs certified 'P(late) <= {TARGET:.0%} at {CONFIDENCE:.0%}' "
          f"(seed {args.seed}); clean length {clean} frames")
    print(f"{'series':<52} {'before':>8} {'1x':>8} {'2x':>8} {'3x':>8}")
    for label, before, after in results:
        print(f"{label:<52} {before:8.2%} " + " ".join(f"{a:8.2%}" for a in after))


if __name__ == "__main__":
    main()
