"""Quantities derived from a fitted law: compute-optimal allocation and inverse prediction.

Allocation follows Hoffmann et al. (2022), Approach 3: with C = k N D (k = 6 for dense layers),
N_opt = G (C/k)^a, D_opt = G^-1 (C/k)^b, G = (alpha A / (beta B))^(1/(alpha+beta)),
a = beta / (alpha+beta), b = alpha / (alpha+beta).
"""

import numpy as np
from scipy.optimize import brentq

from scalinglab.fit.laws import Law

SPAN = (30.0, 60.0)  # search this many e-folds below the smallest / above the largest x


def allocation(p: dict[str, float], budget: float, k: float) -> dict[str, float]:
    alpha, beta, A, B, E = p["alpha"], p["beta"], p["A"], p["B"], p["E"]
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    n_opt, d_opt = G * (budget / k) ** a, (budget / k) ** b / G
    return {"N_opt": n_opt, "D_opt": d_opt, "loss": E + A * n_opt**-alpha + B * d_opt**-beta}


def _solve(f, lo: float, hi: float) -> float | None:
    """The root of a monotone f on [lo, hi], or None when the target is not bracketed."""
    f_lo, f_hi = f(lo), f(hi)
    if not (np.isfinite(f_lo) and np.isfinite(f_hi)) or np.sign(f_lo) == np.sign(f_hi):
        return None
    return float(brentq(f, lo, hi, xtol=1e-12))


def derive(law: Law, params: dict[str, float], logx: np.ndarray, target: float | None = None,
           budgets: list[float] | None = None, k: float = 6.0) -> dict[str, float | None]:
    """Flat dict of derived quantities; None where a target is unreachable."""
    out: dict[str, float | None] = {}
    joint = law.name == "chinchilla"
    if joint:
        alpha, beta = params["alpha"], params["beta"]
        out["a"], out["b"] = beta / (alpha + beta), alpha / (alpha + beta)
        out["G"] = (alpha * params["A"] / (beta * params["B"])) ** (1 / (alpha + beta))
        for c in budgets or []:
            for key, value in allocation(params, c, k).items():
                out[f"{key}@{c:.3g}"] = value
    if target is None:
        return out
    if "E" in params and target <= params["E"]:
        out["target_x"] = None  # at or below the irreducible loss: unreachable at any size
        return out
    if joint:  # the compute whose optimal allocation reaches the target
        log_c = _solve(lambda t: np.log(allocation(params, np.exp(t), k)["loss"] / target),
                       np.log(k) + logx.sum(axis=0).min() - SPAN[0],
                       np.log(k) + logx.sum(axis=0).max() + SPAN[1])
        out["target_x"] = None if log_c is None else float(np.exp(log_c))
        if log_c is not None:
            alloc = allocation(params, out["target_x"], k)
            out["target_N"], out["target_D"] = alloc["N_opt"], alloc["D_opt"]
        return out
    theta = law.theta(params)
    t = _solve(lambda t: law.log_predict(theta, np.array([[t]]))[0] - np.log(target),
               logx[0].min() - SPAN[0], logx[0].max() + SPAN[1])
    out["target_x"] = None if t is None else float(np.exp(t))
    return out
