"""Statistics a results table carries: mean, sample standard deviation, and a 95% confidence interval over seeds."""

from __future__ import annotations

import math

import numpy as np

# two-sided 95% Student t quantiles by degrees of freedom (n - 1); the normal 1.96 beyond
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       15: 2.131, 20: 2.086, 30: 2.042}


def t95(dof: int) -> float:
    """The 95% two-sided t quantile for `dof` degrees of freedom (the nearest tabulated one at or below)."""
    return T95[max(d for d in T95 if d <= dof)] if dof <= 30 else 1.96


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation and the half-width of a 95% t confidence interval (nan for one value)."""
    x = np.asarray(values, np.float64)
    n = len(x)
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = t95(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": float(x.mean()), "std": std, "ci95": half, "n": n}
