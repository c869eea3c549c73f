"""Scaling laws as small declarative objects.

Every law predicts log L from log x (shape (n_x, n_points)) with a parameter vector `theta`,
and names its parameters. Coefficients (E, A, B) are fitted as their logs, so they stay
positive; exponents are fitted as they are. A new law is one short class or one `PowerSum`.
"""

from dataclasses import dataclass

import numpy as np


class Law:
    name: str
    formula: str
    n_x: int
    coefs: tuple[str, ...]       # fitted as logs, reported as exp(.)
    exponents: tuple[str, ...]   # fitted and reported as they are

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.coefs + self.exponents

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def log_predict(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_and_jac(self, theta: np.ndarray,
                        logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log_predict and its Jacobian (n_points, n_params); central differences by default."""
        out = np.empty((logx.shape[1], len(theta)))
        for i in range(len(theta)):
            h = 1e-6 * max(1.0, abs(theta[i]))
            up, down = theta.copy(), theta.copy()
            up[i] += h
            down[i] -= h
            out[:, i] = (self.log_predict(up, logx) - self.log_predict(down, logx)) / (2 * h)
        return self.log_predict(theta, logx), out

    def bounds(self) -> list[tuple[float, float]]:
        raise NotImplementedError

    def starts(self, logx: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Candidate starting points; the optimiser polishes the best few."""
        raise NotImplementedError

    def report(self, theta: np.ndarray) -> dict[str, float]:
        k = len(self.coefs)
        return {**{c: float(np.exp(v)) for c, v in zip(self.coefs, theta[:k], strict=True)},
                **{e: float(v) for e, v in zip(self.exponents, theta[k:], strict=True)}}

    def theta(self, params: dict[str, float]) -> np.ndarray:
        """Inverse of `report`."""
        return np.array([np.log(params[c]) for c in self.coefs]
                        + [params[e] for e in self.exponents], dtype=float)


@dataclass(frozen=True)
class Term:
    coef: str                               # reported name of the coefficient, e.g. "A"
    exps: tuple[tuple[int, str], ...] = ()  # (x column, exponent name), e.g. ((0, "alpha"),)


class PowerSum(Law):
    """L = sum_k C_k prod_j x_j^(-p_kj): linear in the coefficients once exponents are fixed,
    which gives closed-form starts (variable projection) and an analytic Jacobian."""

    exp_grid = (0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0)

    def __init__(self, name: str, formula: str, n_x: int, terms: tuple[Term, ...],
                 exp_bounds: tuple[float, float] = (0.0, 5.0)) -> None:
        self.name, self.formula, self.n_x, self.terms = name, formula, n_x, terms
        self.exp_bounds = exp_bounds
        self.coefs = tuple(t.coef for t in terms)
        self.exponents = tuple(dict.fromkeys(n for t in terms for _, n in t.exps))
        # design[k, i, j] = 1 when term k uses exponent i on x column j
        self.design = np.zeros((len(terms), len(self.exponents), n_x))
        for k, t in enumerate(terms):
            for j, n in t.exps:
                self.design[k, self.exponents.index(n), j] = 1.0

    def log_terms(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        """log of each term, shape (n_terms, n_points)."""
        k = len(self.terms)
        slopes = np.tensordot(self.design, theta[k:], axes=([1], [0]))  # (K, n_x)
        return theta[:k, None] - slopes @ logx

    def log_predict(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        terms = self.log_terms(theta, logx)
        top = terms.max(axis=0)  # plain numpy log-sum-exp: scipy's costs ~0.2 ms a call
        return top + np.log(np.exp(terms - top).sum(axis=0))

    def predict_and_jac(self, theta: np.ndarray,
                        logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # One pass: log-sum-exp of the terms, whose softmax weights are d pred / d log C_k.
        terms = self.log_terms(theta, logx)
        top = terms.max(axis=0)
        e = np.exp(terms - top)
        total = e.sum(axis=0)
        w = e / total                                              # (K, n)
        d_exp = -np.einsum("kn,kij,jn->ni", w, self.design, logx)  # (n, n_exponents)
        return top + np.log(total), np.concatenate([w.T, d_exp], axis=1)

    def bounds(self) -> list[tuple[float, float]]:
        return [(-60.0, 60.0)] * len(self.coefs) + [self.exp_bounds] * len(self.exponents)

    def basis(self, exps: np.ndarray, logx: np.ndarray) -> np.ndarray:
        """Each term with coefficient 1, shape (n_points, n_terms)."""
        return np.exp(-(np.tensordot(self.design, exps, axes=([1], [0])) @ logx)).T

    def starts(self, logx: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        from scipy.optimize import nnls

        lo, hi = self.exp_bounds
        grid = [g for g in self.exp_grid if lo <= g <= hi] or [0.5 * (lo + hi)]
        out = []
        for combo in np.array(np.meshgrid(*[grid] * len(self.exponents))).reshape(
                len(self.exponents), -1).T:
            basis = self.basis(combo, logx) / y[:, None]  # relative residuals
            coef, _ = nnls(basis, np.ones_like(y))
            coef = np.maximum(coef, 1e-12 * y.min())      # a zero term still gets a finite log
            out.append(np.concatenate([np.log(coef), combo]))
        return out


class BrokenPower(Law):
    """A smoothly broken power law with one break (Caballero et al. 2022):
    L = E + A x^-alpha (1 + (x/d)^(1/f))^(-c f). Past the break d the exponent becomes
    alpha + c; f sets how sharp the bend is."""

    name, n_x = "bnsl", 1
    formula = "L = E + A * x^-alpha * (1 + (x/d)^(1/f))^(-c*f)"
    coefs = ("E", "A", "d", "f")
    exponents = ("alpha", "c")

    def log_predict(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        e, a, log_d, log_f, alpha, c = theta
        f = np.exp(log_f)
        t = logx[0]
        bend = -c * f * np.logaddexp(0.0, (t - log_d) / f)
        return np.logaddexp(e, a - alpha * t + bend)

    def predict_and_jac(self, theta: np.ndarray,
                        logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Analytic: one evaluation instead of the default's 13 (law auto's main cost).
        # pred = logaddexp(e, u), u = a - alpha t - c f softplus(z), z = (t - log_d) / f.
        e, a, log_d, log_f, alpha, c = theta
        f = np.exp(log_f)
        t = logx[0]
        z = (t - log_d) / f
        soft, gate = np.logaddexp(0.0, z), np.exp(-np.logaddexp(0.0, -z))  # softplus, sigmoid
        u = a - alpha * t - c * f * soft
        pred = np.logaddexp(e, u)
        w = np.exp(u - pred)  # d pred / d u; d pred / d e = 1 - w
        du = np.stack([np.ones_like(t), c * gate, -c * f * (soft - z * gate), -t, -f * soft])
        return pred, np.column_stack([1.0 - w, *(w * du)])

    def bounds(self) -> list[tuple[float, float]]:
        return [(-60, 60), (-60, 60), (-60, 60), (np.log(0.01), np.log(10)), (-1, 5), (-5, 5)]

    def starts(self, logx: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        t, out = logx[0], []
        for q in (0.25, 0.5, 0.75):
            log_d = np.quantile(t, q)
            for alpha, c in ((0.1, 0.3), (0.3, 0.3), (0.5, -0.3), (0.2, 1.0)):
                for e_frac in (0.5, 0.9):
                    e = np.log(e_frac * y.min())
                    a = np.log(max(y.max() - e_frac * y.min(), 1e-12)) + alpha * t.min()
                    out.append(np.array([e, a, log_d, 0.0, alpha, c]))
        return out


LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        PowerSum("power", "L = A * x^-alpha", 1, (Term("A", ((0, "alpha"),)),),
                 exp_bounds=(-5.0, 5.0)),
        PowerSum("power_offset", "L = E + A * x^-alpha", 1,
                 (Term("E"), Term("A", ((0, "alpha"),)))),
        PowerSum("chinchilla", "L = E + A / N^alpha + B / D^beta", 2,
                 (Term("E"), Term("A", ((0, "alpha"),)), Term("B", ((1, "beta"),)))),
        BrokenPower(),
    )
}
