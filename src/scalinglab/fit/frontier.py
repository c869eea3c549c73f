"""The compute-optimal frontier straight from the runs (Hoffmann et al. 2022).

Approach 1: the lowest-loss envelope over compute, and the model size along it: over the runs'
final points, and, given their learning curves (curve.csv), over every point of every curve.
A curve's points before its run's schedule ends have not had their learning-rate decay, so
their loss overstates what a run planned to stop there reaches: the envelope they make is
biased, and says how many of its points are such.
Approach 2: IsoFLOP profiles. Runs that share a budget (their `budget_flops`, else their
compute within `tol`), where at least 3 sizes do, get a parabola of loss in log N. Its minimum
is the budget's optimal size N_opt, and D_opt is the examples seen there. Across budgets,
N_opt ~ C^a and D_opt ~ C^b are straight lines in log-log. A minimum at an edge of its
budget's sizes is not bracketed: it is flagged and left out of the exponents. Bootstrap
intervals resample each budget's runs and refit everything.
"""

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from scalinglab.fit.power import power_fit


@dataclass
class Frontier:
    envelope: list[dict]                  # runs on the lowest-loss envelope, by compute
    envelope_exponent: float | None       # slope of log N vs log C along the envelope
    isoflops: list[dict] = field(default_factory=list)  # per budget: C, N_opt, D_opt, ...
    isoflop_exponent: float | None = None  # a in N_opt ~ C^a, over the bracketed budgets
    isoflop_exponent_ci: list[float] | None = None
    isoflop_data_exponent: float | None = None  # b in D_opt ~ C^b
    isoflop_data_exponent_ci: list[float] | None = None
    n_bracketed: int = 0                  # budgets whose minimum lies inside their sizes
    curves: dict | None = None            # Approach 1 over the learning curves' points
    note: str = ("Approach 2's parabola is biased even without noise; compare with the joint "
                 "law (--law chinchilla).")

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


def isoflop_profile(budget: pd.DataFrame, compute: str, size: str, y: str,
                    examples: str | None) -> dict | None:
    """One budget's parabola in log N and its minimum; None with fewer than 3 sizes or no
    curvature upwards."""
    if budget[size].nunique() < 3:
        return None
    logn = np.log(budget[size].to_numpy(float))
    coef = np.polyfit(logn, budget[y].to_numpy(float), 2)
    if coef[0] <= 0:
        return None
    t = -coef[1] / (2 * coef[0])
    out = {"C": float(np.exp(np.log(budget[compute]).mean())), "N_opt": float(np.exp(t)),
           "loss_opt": float(np.polyval(coef, t)),
           "at_edge": bool(t <= logn.min() or t >= logn.max()), "parabola": coef.tolist()}
    if examples is not None:  # D at N_opt, along the budget's own log D vs log N line
        line = np.polyfit(logn, np.log(budget[examples].to_numpy(float)), 1)
        out["D_opt"] = float(np.exp(np.polyval(line, t)))
    return out


def _exponents(profiles: list[dict]) -> tuple[float | None, float | None]:
    inside = [p for p in profiles if not p["at_edge"]]
    if len(inside) < 2:
        return None, None
    c = [p["C"] for p in inside]
    a = _slope(c, [p["N_opt"] for p in inside])
    b = _slope(c, [p["D_opt"] for p in inside]) if "D_opt" in inside[0] else None
    return a, b


def compute_frontier(table: pd.DataFrame, compute: str = "train_flops", size: str = "params",
                     y: str = "val_loss", tol: float = 0.1, examples: str = "examples_seen",
                     bootstrap: int = 0, seed: int = 0, ci: float = 0.95,
                     curves: pd.DataFrame | None = None) -> Frontier:
    """Approach 1 over the runs (and over `curves`, their learning curves, when given) and
    Approach 2 over the budgets with 3+ sizes."""
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
    profiles = []
    for g in groups:
        p = isoflop_profile(g, compute, size, y, examples)
        if p is not None:
            p["points"] = g[[compute, size, y]].to_dict("records")
            profiles.append(p)
    a, b = _exponents(profiles)
    front = Frontier(envelope, env_exp, profiles, a, isoflop_data_exponent=b,
                     n_bracketed=sum(not p["at_edge"] for p in profiles),
                     curves=(curve_envelope(curves, compute, size, y)
                             if curves is not None else None))
    if bootstrap and a is not None:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(bootstrap):  # resample each budget's runs, refit every parabola
            refit = [isoflop_profile(g.iloc[rng.integers(len(g), size=len(g))], compute, size,
                                     y, examples) for g in groups]
            samples.append(_exponents([p for p in refit if p is not None]))
        q = [100 * (1 - ci) / 2, 100 * (1 + ci) / 2]
        for i, name in enumerate(("isoflop_exponent_ci", "isoflop_data_exponent_ci")):
            values = [s[i] for s in samples if s[i] is not None]
            if values:
                setattr(front, name, np.percentile(values, q).tolist())
    return front
