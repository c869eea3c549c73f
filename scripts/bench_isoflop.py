"""Benchmark: Approach 2's per-budget estimators on IsoFLOP profiles whose minima are known.

Profiles come from Hoffmann et al.'s fitted law L(N, D) = E + A/N^alpha + B/D^beta with
D = C / (6 N), at 4 budgets a decade apart, whose exact N_opt and exponent a = beta/(alpha+beta)
are closed-form. Each scenario varies how far the sizes span past the minimum, whether they sit
symmetrically around it, and the noise (log-normal, on every run); each is repeated with fresh
noise and a jittered grid. In the "one grid" scenarios every budget trains the same sizes, as
many published sweeps do, so each budget's minimum sits at a different place in its span.
Printed per estimator: the median |log10 N_opt error| over budgets, the median |a error| over
repeats, and how many budgets were flagged (left out).

    python scripts/bench_isoflop.py [--repeats 200] [--seed 0]
"""

import argparse

import numpy as np
import pandas as pd

from scalinglab.fit.frontier import ESTIMATORS, compute_frontier

E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
BUDGETS = (1e18, 1e19, 1e20, 1e21)
A_TRUE = BETA / (ALPHA + BETA)
# name: (decades below N_opt, decades above, sizes, noise)
SCENARIOS = {
    "narrow, centred, clean": (0.5, 0.5, 7, 0.0),
    "narrow, centred, 1% noise": (0.5, 0.5, 7, 0.01),
    "wide, centred, 0.5% noise": (2.0, 2.0, 9, 0.005),
    "wide, skewed, 0.5% noise": (0.7, 2.5, 9, 0.005),
    "wide, skewed, clean": (0.7, 2.5, 9, 0.0),
    "wide, skewed, 2% noise": (0.7, 2.5, 9, 0.02),
    "one grid, clean": (None, None, 12, 0.0),
    "one grid, 0.5% noise": (None, None, 12, 0.005),
    "one grid, 2% noise": (None, None, 12, 0.02),
}


def n_opt(c: float) -> float:
    g = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    return g * (c / 6) ** A_TRUE


def profiles(below: float | None, above: float | None, sizes: int, noise: float,
             rng: np.random.Generator) -> pd.DataFrame:
    """Each budget's sizes span `below` and `above` decades around its N_opt; None: one grid
    for every budget, from a decade below the smallest budget's N_opt to one above the
    largest's."""
    rows = []
    shift = rng.uniform(-0.15, 0.15)  # the grid does not sit exactly on the minimum
    for c in BUDGETS:
        if below is None:
            lo, hi = np.log10(n_opt(BUDGETS[0])) - 1, np.log10(n_opt(BUDGETS[-1])) + 1
            n = np.logspace(lo + shift, hi + shift, sizes)
        else:
            shift = rng.uniform(-0.15, 0.15)
            n = n_opt(c) * np.logspace(-below + shift, above + shift, sizes)
        d = c / (6 * n)
        loss = (E + A / n**ALPHA + B / d**BETA) * np.exp(rng.normal(0, noise, sizes))
        rows += [{"train_flops": c, "budget_flops": c, "params": ni, "examples_seen": di,
                  "val_loss": li} for ni, di, li in zip(n, d, loss, strict=True)]
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = []
    for name, (below, above, sizes, noise) in SCENARIOS.items():
        rng = np.random.default_rng(args.seed)
        tables = [profiles(below, above, sizes, noise, rng) for _ in range(args.repeats)]
        for estimator in ESTIMATORS:
            n_err, a_err, flagged, total = [], [], 0, 0
            for table in tables:
                front = compute_frontier(table, estimator=estimator)
                for b in front.isoflops:
                    total += 1
                    if b["at_edge"] or b["poorly_determined"]:
                        flagged += 1
                        continue
                    n_err.append(abs(np.log10(b["N_opt"] / n_opt(b["C"]))))
                if front.isoflop_exponent is not None:
                    a_err.append(abs(front.isoflop_exponent - A_TRUE))
            rows.append({"scenario": name, "estimator": estimator,
                         "median |log10 N err|": np.median(n_err) if n_err else np.nan,
                         "median |a err|": np.median(a_err) if a_err else np.nan,
                         "flagged": f"{flagged}/{len(BUDGETS) * args.repeats}",
                         "no exponent": args.repeats - len(a_err)})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 140, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
        print("\nover all scenarios (median of the scenario medians):")
        print(table.groupby("estimator")[["median |log10 N err|", "median |a err|"]].median())


if __name__ == "__main__":
    main()
