"""The compute-optimal frontier straight from the runs (Hoffmann et al. 2022).

Approach 1: the lowest-loss envelope over compute, and the model size along it: over the runs'
final points, and, given their learning curves (curve.csv), over every point of every curve.
A curve's points before its run's schedule ends have not had their learning-rate decay, so
their loss overstates what a run planned to stop there reaches: the envelope they make is
biased, and says how many of its points are such.
Approach 2: IsoFLOP profiles. Runs that share a budget (their `budget_flops`, else their
compute within `tol`), where at least 3 sizes do, get a curve of loss in log N, and its minimum
is the budget's optimal size N_opt; D_opt is the examples seen there. Across budgets,
N_opt ~ C^a and D_opt ~ C^b are straight lines in log-log. The curve is one of ESTIMATORS:
`local` (the default) fits a parabola to the 5 sizes around the lowest mean loss only (seeds
averaged), because one parabola over sizes spanning far past the minimum is pulled by the
asymmetric far ends; `parabola` fits all sizes (Hoffmann et al.); `spline` interpolates log
loss in log N with a cubic spline (as Porian et al. 2024). scripts/bench_isoflop.py compares
them on profiles with known minima (docs/reference.md). A minimum at an edge of the sizes its
curve was fitted to is not bracketed, and one that moves by more than a factor 2 when any one
size is left out is poorly determined: both are flagged and left out of the exponents.
Bootstrap intervals resample each budget's runs and refit every curve, over the budgets the
estimate may count (not the poorly determined ones).
"""

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline

from scalinglab.fit import FitError
from scalinglab.fit.power import power_fit

ESTIMATORS = ("local", "parabola", "spline")
LOCAL_SIZES = 5       # `local`: the sizes around the lowest loss its parabola fits
UNSTABLE_FACTOR = 2.0  # N_opt moving more than this when one size is left out: poorly determined


@dataclass
class Frontier:
    envelope: list[dict]                  # runs on the lowest-loss envelope, by compute
    envelope_exponent: float | None       # slope of log N vs log C along the envelope
    isoflops: list[dict] = field(default_factory=list)  # per budget: C, N_opt, D_opt, ...
    isoflop_exponent: float | None = None  # a in N_opt ~ C^a, over the bracketed budgets
    isoflop_exponent_ci: list[float] | None = None
    isoflop_data_exponent: float | None = None  # b in D_opt ~ C^b
    isoflop_data_exponent_ci: list[float] | None = None
    n_bracketed: int = 0   # budgets in the exponents: bracketed and not poorly determined
    curves: dict | None = None            # Approach 1 over the learning curves' points
    estimator: str = "local"              # Approach 2's curve per budget (ESTIMATORS)
    note: str = ("Approach 2's minima are biased by the curve's shape even without noise; "
                 "compare with the joint law (--law chinchilla).")

    def to_dict(self) -> dict:
        return asdict(self)


def _slope(c, n) -> float | None:
    """k in n ~ c^k, through two points or more."""
    line = power_fit(c, n, min_points=2)
    return None if line is None else line.k


def _envelope(rows: pd.DataFrame, compute: str, y: str) -> pd.DataFrame:
    """The rows that lower the best loss so far, in order of compute (at equal compute, the
    lowest loss only)."""
    rows = rows.sort_values([compute, y], kind="stable")
    return rows[rows[y] < rows[y].cummin().shift(fill_value=np.inf)]


CURVE_NOTE = ("Points before a run's schedule ends (progress < 1) have not had their LR decay: "
              "their loss overstates what a run planned to stop there reaches, so an envelope "
              "made of them is biased (Hoffmann et al. trained one run per horizon instead).")


def curve_envelope(curves: pd.DataFrame, compute: str = "train_flops", size: str = "params",
                   y: str = "val_loss", examples: str = "examples_seen") -> dict | None:
    """Approach 1 over every learning-curve point: the lowest loss at each compute, the size N
    and data D there, and the slopes of log N and log D in log C along it."""
    need = [compute, size, y]
    if any(c not in curves for c in need):
        return None
    keep = [*need, *[c for c in (examples, "progress", "job") if c in curves]]
    points = curves[keep].dropna(subset=need)
    points = points[points[compute] > 0]
    if points.empty:
        return None
    env = _envelope(points, compute, y)
    c = env[compute].to_numpy(float)
    before_end = int((env["progress"] < 1 - 1e-9).sum()) if "progress" in env else None
    return {
        "envelope": [{"C": float(r[compute]), "N": float(r[size]), "loss": float(r[y]),
                      **({"D": float(r[examples])} if examples in env else {}),
                      **({"progress": float(r["progress"])} if "progress" in env else {})}
                     for _, r in env.iterrows()],
        "a": _slope(c, env[size].to_numpy(float)),
        "b": _slope(c, env[examples].to_numpy(float)) if examples in env else None,
        "n_points": len(points),
        "n_runs": int(points["job"].nunique()) if "job" in points else None,
        "n_before_end": before_end,
        "note": CURVE_NOTE,
    }


def budgets(rows: pd.DataFrame, compute: str, tol: float) -> np.ndarray:
    """A budget id per run: its `budget_flops` when the sweep set one, else its compute
    clustered within a factor (1 + tol)."""
    if "budget_flops" in rows and rows["budget_flops"].notna().all():
        return pd.factorize(rows["budget_flops"], sort=True)[0]
    logc = np.log(rows[compute].to_numpy(float))
    return np.concatenate([[0], np.cumsum(np.diff(logc) > np.log1p(tol))])


def _size_means(logn: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct sizes, sorted, and each one's mean value over its runs (seeds)."""
    sizes, inverse = np.unique(logn, return_inverse=True)
    return sizes, np.bincount(inverse, weights=values) / np.bincount(inverse)


def _minimum(logn: np.ndarray, loss: np.ndarray, estimator: str):
    """(log N_opt, the loss there, (lo, hi, f)): f is the estimator's curve of loss in log N
    over the span [lo, hi] it fits. None when it has no minimum (a parabola that does not curve
    upwards). The parabola's vertex may lie past its sizes; the spline's minimum is searched
    inside them."""
    if estimator == "spline":
        if (loss <= 0).any():
            raise FitError("--isoflop-estimator spline fits log loss: the loss must be positive")
        sizes, mean = _size_means(logn, np.log(loss))
        spline = CubicSpline(sizes, mean)

        def f(t):
            return np.exp(spline(t))

        grid = np.linspace(sizes[0], sizes[-1], 2001)
        t = grid[np.argmin(f(grid))]
        return t, float(f(t)), (sizes[0], sizes[-1], f)
    if estimator == "local":  # the window centres on the size with the lowest mean (seeds)
        sizes, mean = _size_means(logn, loss)
        best = int(np.argmin(mean))
        start = int(np.clip(best - LOCAL_SIZES // 2, 0, max(len(sizes) - LOCAL_SIZES, 0)))
        window = sizes[start: start + LOCAL_SIZES]
        near = (logn >= window[0]) & (logn <= window[-1])
        logn, loss = logn[near], loss[near]
    coef = np.polyfit(logn, loss, 2)
    if coef[0] <= 0:
        return None
    t = -coef[1] / (2 * coef[0])
    return t, float(np.polyval(coef, t)), (logn.min(), logn.max(),
                                           lambda t: np.polyval(coef, t))


def _unstable(logn: np.ndarray, loss: np.ndarray, estimator: str, t: float) -> bool:
    """Whether leaving out any one size moves the minimum by more than UNSTABLE_FACTOR (or
    loses it)."""
    sizes = np.unique(logn)
    if len(sizes) < 4:
        return False  # nothing to leave out: 3 sizes are the least that have a minimum
    for size in sizes:
        keep = logn != size
        other = _minimum(logn[keep], loss[keep], estimator)
        if other is None or abs(other[0] - t) > np.log(UNSTABLE_FACTOR):
            return True
    return False


def isoflop_profile(budget: pd.DataFrame, compute: str, size: str, y: str,
                    examples: str | None, estimator: str = "local",
                    check: bool = True) -> dict | None:
    """One budget's curve in log N and its minimum; None with fewer than 3 sizes or no
    minimum. `check`: also test whether the minimum is well determined (leave-one-size-out)."""
    if budget[size].nunique() < 3:
        return None
    logn = np.log(budget[size].to_numpy(float))
    loss = budget[y].to_numpy(float)
    found = _minimum(logn, loss, estimator)
    if found is None:
        return None
    t, loss_opt, (lo, hi, f) = found
    at_edge = bool(t <= lo + 1e-9 or t >= hi - 1e-9)  # past the sizes the curve was fitted to
    grid = np.linspace(lo, hi, 60)
    out = {"C": float(np.exp(np.log(budget[compute]).mean())), "N_opt": float(np.exp(t)),
           "loss_opt": loss_opt, "at_edge": at_edge, "estimator": estimator,
           "poorly_determined": bool(check and not at_edge and _unstable(logn, loss,
                                                                         estimator, t)),
           "fitted": {"N": np.exp(grid).tolist(), "loss": f(grid).tolist()}}
    if examples is not None:  # D at N_opt, along the budget's own log D vs log N line
        line = np.polyfit(logn, np.log(budget[examples].to_numpy(float)), 1)
        out["D_opt"] = float(np.exp(np.polyval(line, t)))
    return out


def usable(profile: dict) -> bool:
    """A budget whose minimum enters the exponents: bracketed and well determined."""
    return not profile["at_edge"] and not profile.get("poorly_determined")


def minimum_status(profile: dict) -> str:
    """Whether a budget's minimum counts, and if not why, in a few words (tables)."""
    if profile["at_edge"]:
        return "no: at an edge of its sizes"
    if profile.get("poorly_determined"):
        return f"no: moves >{UNSTABLE_FACTOR:g}x without one size"
    return "yes"


def _exponents(profiles: list[dict]) -> tuple[float | None, float | None]:
    inside = [p for p in profiles if usable(p)]
    if len(inside) < 2:
        return None, None
    c = [p["C"] for p in inside]
    a = _slope(c, [p["N_opt"] for p in inside])
    b = _slope(c, [p["D_opt"] for p in inside]) if "D_opt" in inside[0] else None
    return a, b


def compute_frontier(table: pd.DataFrame, compute: str = "train_flops", size: str = "params",
                     y: str = "val_loss", tol: float = 0.1, examples: str = "examples_seen",
                     bootstrap: int = 0, seed: int = 0, ci: float = 0.95,
                     curves: pd.DataFrame | None = None,
                     estimator: str = "local") -> Frontier:
    """Approach 1 over the runs (and over `curves`, their learning curves, when given) and
    Approach 2 over the budgets with 3+ sizes, each budget's minimum by `estimator`."""
    if estimator not in ESTIMATORS:
        raise FitError(f"IsoFLOP estimator must be one of {ESTIMATORS}, got {estimator!r}")
    # each column once: `compute` may itself be the budget column (--compute budget_flops)
    cols = list(dict.fromkeys([compute, size, y,
                               *[c for c in (examples, "budget_flops") if c in table]]))
    rows = table[cols].dropna(subset=[compute, size, y]).sort_values(compute, kind="stable")
    examples = examples if examples in rows else None
    env = _envelope(rows, compute, y)
    envelope = [{"C": float(c), "N": float(n), "loss": float(loss)}
                for c, n, loss in env[[compute, size, y]].itertuples(index=False)]
    env_exp = _slope(env[compute].to_numpy(float), env[size].to_numpy(float))

    groups = [g for _, g in rows.groupby(budgets(rows, compute, tol)) if g[size].nunique() >= 3]
    profiles, resampled = [], []  # resampled: the budgets the bootstrap refits
    for g in groups:
        p = isoflop_profile(g, compute, size, y, examples, estimator)
        if p is not None:
            p["points"] = g[[compute, size, y]].to_dict("records")
            profiles.append(p)
        if p is None or not p["poorly_determined"]:  # left out of the estimate: out of its CI
            resampled.append(g)
    a, b = _exponents(profiles)
    front = Frontier(envelope, env_exp, profiles, a, isoflop_data_exponent=b,
                     n_bracketed=sum(usable(p) for p in profiles),
                     curves=(curve_envelope(curves, compute, size, y)
                             if curves is not None else None), estimator=estimator)
    if bootstrap and a is not None:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(bootstrap):  # resample each budget's runs, refit every curve
            refit = [isoflop_profile(g.iloc[rng.integers(len(g), size=len(g))], compute, size,
                                     y, examples, estimator, check=False) for g in resampled]
            samples.append(_exponents([p for p in refit if p is not None]))
        q = [100 * (1 - ci) / 2, 100 * (1 + ci) / 2]
        for i, name in enumerate(("isoflop_exponent_ci", "isoflop_data_exponent_ci")):
            values = [s[i] for s in samples if s[i] is not None]
            if values:
                setattr(front, name, np.percentile(values, q).tolist())
    return front
