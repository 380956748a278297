"""The robust baseline step the bucketed signals share (rate, error rate): an EWMA of a value
and one of its absolute deviations (a MAD-like spread), the value clipped to mean + 3 spreads
first, so an attack's bucket does not teach the baseline that attacks are normal."""

from __future__ import annotations


def learn_clipped(mean: float, dev: float, value: float, alpha: float, min_spread: float
                  ) -> tuple[float, float, float]:
    """One bucket learned: (new mean, new deviation, the clipped value it learned).
    `min_spread` floors the spread the clip uses, so a flat baseline still lets values rise."""
    clipped = min(value, mean + 3.0 * max(dev, min_spread))
    return ((1 - alpha) * mean + alpha * clipped,
            (1 - alpha) * dev + alpha * abs(clipped - mean), clipped)
