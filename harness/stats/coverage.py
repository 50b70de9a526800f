"""Does a band that claims to hold the truth a fraction of the time do so? (pure)"""

from __future__ import annotations

from math import comb


def at_most_probability(held: int, n: int, claim: float) -> float:
    """P(the band holds the truth `held` times or fewer in `n` | it really does so with probability `claim`): the
    one-sided binomial test of a band's coverage. Small (say < 0.05): the band claims more than it delivers; with
    a handful of figures even a miss or two leaves it large, and the claim stands unrefuted, not proven."""
    if n <= 0:
        return 1.0
    return sum(comb(n, k) * claim**k * (1 - claim) ** (n - k) for k in range(0, min(held, n) + 1))
