"""Tables whose laws are known, for the fit's tests and the report's."""

import numpy as np
import pandas as pd


def power_offset_table(E=0.5, A=30.0, alpha=0.4, noise=0.01, seed=0, n=12, groups=("a",)):
    rng = np.random.default_rng(seed)
    rows = []
    for g in groups:
        x = np.geomspace(1e3, 1e7, n)
        y = (E + A * x**-alpha) * np.exp(rng.normal(0, noise, n))
        rows += [{"family": g, "params": xi, "val_loss": yi, "status": "completed"}
                 for xi, yi in zip(x, y, strict=True)]
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, path) -> str:
    table.to_csv(path, index=False)
    return str(path)


def isoflop_table(budgets=(1e12, 1e14, 1e16), spread=(0.1, 0.3, 1.0, 3.0, 10.0), noise=0.0):
    """Runs of a budget sweep: N_opt = C^0.5 exactly, D = C / (6 N), a parabola in log N."""
    rng = np.random.default_rng(0)
    rows = []
    for c in budgets:
        n_star = c**0.5
        for n in n_star * np.array(spread):
            loss = (1 + 0.1 * np.log(n / n_star) ** 2 + 10 / np.log(c)) * np.exp(
                rng.normal(0, noise))
            rows.append({"budget_flops": c, "train_flops": c * 1.001, "params": n,
                         "examples_seen": c / (6 * n), "val_loss": loss})
    return pd.DataFrame(rows)


def curves_table(sizes=(1e3, 1e4, 1e5), steps=(1, 3, 10, 30, 100, 300, 1000)):
    """Learning curves of three sizes: compute 6 N D per step, a loss falling in N and D, and
    every point before the end of its schedule."""
    rows = []
    for n in sizes:
        for s in steps:
            d = 100 * s
            rows.append({"job": f"n{n:g}", "params": n, "step": s, "progress": s / steps[-1],
                         "examples_seen": d, "train_flops": 6 * n * d,
                         "val_loss": 1 + 30 * n**-0.3 + 30 * d**-0.3})
    return pd.DataFrame(rows)


LRS = tuple(2.0 ** np.arange(-10, -3))  # 2^-10 .. 2^-4


def lr_sweep(sizes=(1e3, 1e4, 1e5), lrs=LRS, k=0.5, seeds=2):
    """Loss = a law in N plus a parabola in log lr around lr*(N) = 0.3 N^-k (so lr* halves
    every 4x in N for k=0.5), under sp; under mup the optimum stays at 2^-7."""
    rng = np.random.default_rng(0)
    rows = []
    for par in ("sp", "mup"):
        for n in sizes:
            best = 0.3 * n**-k if par == "sp" else 2.0**-7
            for lr in lrs:
                for s in range(seeds):
                    loss = 1 + 50 * n**-0.4 + 0.05 * np.log(lr / best) ** 2 + rng.normal(0, 1e-4)
                    rows.append({"status": "completed", "family": "mlp", "params": n,
                                 "model.width": int(n / 100), "model.parametrization": par,
                                 "module.lr": lr, "seed": s, "val_loss": loss})
    return pd.DataFrame(rows)
