"""Statistics shared by the evaluations: the Wilson interval of a success rate."""

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


__all__ = ["wilson_interval"]
