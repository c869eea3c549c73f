"""Uncertainty by bootstrap over runs: resample whole configurations with replacement (all
seeds of a configuration travel together), refit, and take percentile intervals of every
parameter and derived quantity."""

from collections.abc import Callable

import numpy as np

from scalinglab.fit.laws import Law
from scalinglab.fit.optimize import refit


def resample_fits(law: Law, logx: np.ndarray, logy: np.ndarray, clusters: np.ndarray,
                  n: int, seed: int, delta: float, theta0: np.ndarray,
                  derive: Callable[[dict], dict]) -> list[dict]:
    """`n` refits on configuration-resampled data; each a flat dict of params and derived."""
    rng = np.random.default_rng(seed)
    ids = np.unique(clusters)
    members = [np.flatnonzero(clusters == c) for c in ids]
    out = []
    for _ in range(n):
        pick = np.concatenate([members[i] for i in rng.integers(len(ids), size=len(ids))])
        opt = refit(law, logx[:, pick], logy[pick], theta0, delta)
        params = law.report(opt.theta)
        out.append({**params, **derive(params)})
    return out


def percentile_intervals(samples: list[dict], level: float) -> dict[str, list[float] | None]:
    """[lo, hi] per key; None where no resample gave a value (e.g. an unreachable target)."""
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    keys = dict.fromkeys(k for s in samples for k in s)
    out = {}
    for key in keys:
        values = np.array([np.nan if s.get(key) is None else s[key] for s in samples], float)
        out[key] = None if np.isnan(values).all() else np.nanquantile(values, q).tolist()
    return out
