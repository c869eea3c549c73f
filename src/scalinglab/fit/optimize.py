"""Fitting a law: the sum of Huber losses on log residuals, minimised by L-BFGS-B.

Starting points come from a grid over the exponents. For each grid point the coefficients are
solved in closed form by non-negative least squares on relative residuals (variable
projection: given the exponents, L is linear in the coefficients); the best few of these
starts are then polished jointly with L-BFGS-B and an analytic gradient.
"""

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, nnls
from scipy.special import softmax

from scalinglab.fit.laws import Law


@dataclass
class Optimum:
    theta: np.ndarray
    objective: float


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def objective_and_grad(theta: np.ndarray, law: Law, logx: np.ndarray, logy: np.ndarray,
                       delta: float) -> tuple[float, np.ndarray]:
    terms = law.log_terms(theta, logx)              # (K, n)
    pred = np.logaddexp.reduce(terms, axis=0)
    r = logy - pred
    psi = np.clip(r, -delta, delta)                 # Huber's derivative
    w = softmax(terms, axis=0)                      # d pred / d log C_k
    grad = np.empty_like(theta)
    k = len(law.terms)
    grad[:k] = -(w * psi).sum(axis=1)
    for i, name in enumerate(law.exponents):        # d pred / d p = -w_k log x_j
        g = np.zeros_like(r)
        for t, term in enumerate(law.terms):
            for j, n in term.exps:
                if n == name:
                    g -= w[t] * logx[j]
        grad[k + i] = -(psi * g).sum()
    return float(huber(r, delta).sum()), grad


def _projected_starts(law: Law, logx: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    starts = []
    lo, hi = law.exp_bounds
    grid = [g for g in law.exp_grid if lo <= g <= hi] or [0.5 * (lo + hi)]
    for combo in itertools.product(grid, repeat=len(law.exponents)):
        exps = dict(zip(law.exponents, combo, strict=True))
        basis = law.basis(exps, logx) / y[:, None]   # relative residuals
        coef, _ = nnls(basis, np.ones_like(y))
        coef = np.maximum(coef, 1e-12 * y.min())      # a zero term still gets a finite log
        starts.append(np.concatenate([np.log(coef), combo]))
    return starts


def minimize_law(law: Law, logx: np.ndarray, logy: np.ndarray, delta: float = 1e-3,
                 n_polish: int = 5) -> Optimum:
    """The global optimum of the Huber objective, found from projected grid starts."""
    args = (law, logx, logy, delta)
    starts = _projected_starts(law, logx, np.exp(logy))
    scored = sorted(starts, key=lambda s: objective_and_grad(s, *args)[0])
    best = None
    for start in scored[:n_polish]:
        res = minimize(objective_and_grad, start, args=args, jac=True, method="L-BFGS-B",
                       bounds=law.bounds(), options={"maxiter": 2000, "ftol": 1e-15,
                                                     "gtol": 1e-12})
        if best is None or res.fun < best.objective:
            best = Optimum(res.x, float(res.fun))
    return best
