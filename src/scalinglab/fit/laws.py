"""Scaling laws as small declarative objects.

A law here is a sum of power terms, L = sum_k C_k * prod_j x_j^(-p_kj), written in log space as
log L = logsumexp_k(log C_k - sum_j p_kj log x_j). Fitting works on the log-coefficients
(`c_k = log C_k`) and the exponents; `C_k` are reported under the usual names (E, A, B).
A new law of this form is one `Law(...)` entry.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp


@dataclass(frozen=True)
class Term:
    coef: str                         # reported name of C_k, e.g. "A"
    exps: tuple[tuple[int, str], ...] = ()  # (x column index, exponent name), e.g. ((0, "alpha"),)


@dataclass(frozen=True)
class Law:
    name: str
    formula: str
    n_x: int                           # how many x columns the law takes
    terms: tuple[Term, ...]
    exp_bounds: tuple[float, float] = (0.0, 5.0)
    exp_grid: tuple[float, ...] = (0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0)

    @property
    def coefs(self) -> tuple[str, ...]:
        return tuple(t.coef for t in self.terms)

    @property
    def exponents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for t in self.terms for _, name in t.exps))

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.coefs + self.exponents

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """theta = (log-coefficients..., exponents...) -> (log C array, exponent dict)."""
        k = len(self.terms)
        return theta[:k], dict(zip(self.exponents, theta[k:], strict=True))

    def log_terms(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        """Each term's log value, shape (n_terms, n_points); logx has shape (n_x, n_points)."""
        logc, exps = self.unpack(theta)
        out = np.empty((len(self.terms), logx.shape[1]))
        for k, term in enumerate(self.terms):
            out[k] = logc[k] - sum(exps[name] * logx[j] for j, name in term.exps)
        return out

    def log_predict(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        return logsumexp(self.log_terms(theta, logx), axis=0)

    def basis(self, exps: dict[str, float], logx: np.ndarray) -> np.ndarray:
        """Each term with C_k = 1, shape (n_points, n_terms): L is linear in C given exponents."""
        return np.stack([np.exp(-sum(exps[n] * logx[j] for j, n in t.exps) if t.exps
                                else np.zeros(logx.shape[1])) for t in self.terms], axis=1)

    def bounds(self) -> list[tuple[float, float]]:
        return [(-60.0, 60.0)] * len(self.terms) + [self.exp_bounds] * len(self.exponents)

    def report(self, theta: np.ndarray) -> dict[str, float]:
        """Reported parameters: coefficients on the natural scale, exponents as they are."""
        logc, exps = self.unpack(theta)
        return {**{c: float(np.exp(v)) for c, v in zip(self.coefs, logc, strict=True)},
                **{k: float(v) for k, v in exps.items()}}

    def theta(self, params: dict[str, float]) -> np.ndarray:
        """Inverse of `report`."""
        return np.array([np.log(params[c]) for c in self.coefs]
                        + [params[e] for e in self.exponents], dtype=float)


LAWS = {
    law.name: law
    for law in (
        Law("power", "L = A * x^-alpha", 1, (Term("A", ((0, "alpha"),)),),
            exp_bounds=(-5.0, 5.0)),
        Law("power_offset", "L = E + A * x^-alpha", 1,
            (Term("E"), Term("A", ((0, "alpha"),)))),
        Law("chinchilla", "L = E + A / N^alpha + B / D^beta", 2,
            (Term("E"), Term("A", ((0, "alpha"),)), Term("B", ((1, "beta"),)))),
    )
}
