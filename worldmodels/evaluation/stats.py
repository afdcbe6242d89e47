"""Statistics shared by the evaluations: the Wilson interval of a success rate, a bootstrap interval of a
paired mean difference."""

from __future__ import annotations

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for the default z).

    (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), p = successes / n; (0, 1) when n = 0.
    """
    if n == 0:
        return 0.0, 1.0
    p, z2 = successes / n, z * z
    centre = p + z2 / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return float(max(0.0, (centre - half) / (1 + z2 / n))), float(min(1.0, (centre + half) / (1 + z2 / n)))


def paired_bootstrap_interval(a, b, resamples: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of the paired differences ``a - b`` and its percentile bootstrap interval (episodes resampled
    with replacement, ``resamples`` times, fixed ``seed`` so a table prints the same interval twice).

    Shapes: ``a``, ``b`` ``[n]`` (episode i of ``a`` started where episode i of ``b`` did).
    Returns: ``(mean, low, high)``; NaNs for n = 0.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.shape[0]} and {b.shape[0]}.")
    if a.size == 0:
        return float("nan"), float("nan"), float("nan")
    diff = a - b
    idx = np.random.default_rng(seed).integers(0, diff.size, size=(resamples, diff.size))
    means = diff[idx].mean(1)
    tail = (1 - level) / 2 * 100
    return float(diff.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


__all__ = ["paired_bootstrap_interval", "wilson_interval"]
