"""The compute-optimal frontier straight from the runs (Hoffmann et al. 2022).

Approach 1: the lowest-loss envelope over compute, and the model size along it.
Approach 2: IsoFLOP profiles: runs sharing a budget (within `tol`), where at least 3 sizes do,
get a parabola in log N; its minimum is the optimal size for that budget. Across budgets,
N_opt ~ C^a is a straight line in log-log.
"""

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Frontier:
    envelope: list[dict]                  # runs on the lowest-loss envelope, by compute
    envelope_exponent: float | None       # slope of log N vs log C along the envelope
    isoflops: list[dict] = field(default_factory=list)  # per budget: C, N_opt, loss_opt, points
    isoflop_exponent: float | None = None  # a in N_opt ~ C^a across budgets

    def to_dict(self) -> dict:
        return asdict(self)


def _slope(logc: np.ndarray, logn: np.ndarray) -> float | None:
    if len(np.unique(logc)) < 2:
        return None
    return float(np.polyfit(logc, logn, 1)[0])


def compute_frontier(table: pd.DataFrame, compute: str = "train_flops", size: str = "params",
                     y: str = "val_loss", tol: float = 0.1) -> Frontier:
    rows = table[[compute, size, y]].dropna().sort_values(compute)
    best, envelope = np.inf, []
    for r in rows.itertuples(index=False):
        c, n, loss = r
        if loss < best:
            best = loss
            envelope.append({"C": float(c), "N": float(n), "loss": float(loss)})
    env = pd.DataFrame(envelope)
    env_exp = _slope(np.log(env["C"]), np.log(env["N"])) if len(env) >= 2 else None

    # IsoFLOP budgets: cluster runs whose compute is within a factor (1 + tol) of each other.
    logc = np.log(rows[compute].to_numpy(float))
    cluster = np.concatenate([[0], np.cumsum(np.diff(logc) > np.log1p(tol))])
    isoflops = []
    for cid in np.unique(cluster):
        budget = rows[cluster == cid]
        if budget[size].nunique() < 3:
            continue
        logn = np.log(budget[size].to_numpy(float))
        coef = np.polyfit(logn, budget[y].to_numpy(float), 2)
        curv, lin = coef[0], coef[1]
        if curv <= 0:
            continue  # no interior minimum: this budget does not bracket the optimum
        t = -lin / (2 * curv)
        isoflops.append({"C": float(np.exp(np.log(budget[compute]).mean())),
                         "N_opt": float(np.exp(t)), "loss_opt": float(np.polyval(coef, t)),
                         "points": budget[[compute, size, y]].to_dict("records"),
                         "parabola": coef.tolist()})
    iso_exp = (_slope(np.log([b["C"] for b in isoflops]), np.log([b["N_opt"] for b in isoflops]))
               if len(isoflops) >= 2 else None)
    return Frontier(envelope, env_exp, isoflops, iso_exp)
