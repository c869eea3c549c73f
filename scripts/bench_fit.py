"""Benchmark: our chinchilla fit vs brute-force L-BFGS-B from the 4,500-point start grid of
Hoffmann et al. (2022), side by side on the same synthetic data, on one core.

    python scripts/bench_fit.py [--points 250] [--seed 0] [--json]
"""

import argparse
import itertools
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import numpy as np  # noqa: E402

from scalinglab.fit.laws import LAWS  # noqa: E402
from scalinglab.fit.optimize import minimize_law, polish  # noqa: E402

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def synthetic(n_points: int, seed: int, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(np.log(1e6), np.log(1e10), n_points))
    d = np.exp(rng.uniform(np.log(1e8), np.log(1e12), n_points))
    law = LAWS["chinchilla"]
    logx = np.log(np.stack([n, d]))
    logy = law.log_predict(law.theta(TRUE), logx) + rng.normal(0, noise, n_points)
    return logx, logy


def brute_force(logx, logy, delta):
    law = LAWS["chinchilla"]
    grid = itertools.product(np.arange(-1, 1.01, 0.5), np.arange(0, 26, 5), np.arange(0, 26, 5),
                             np.arange(0, 2.01, 0.5), np.arange(0, 2.01, 0.5))
    best = None
    for e, a, b, alpha, beta in grid:
        opt = polish(law, np.array([e, a, b, alpha, beta]), logx, logy, delta)
        if best is None or opt.objective < best.objective:
            best = opt
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--points", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--delta", type=float, default=1e-3)
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples to time (0: skip)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    logx, logy = synthetic(args.points, args.seed)
    law = LAWS["chinchilla"]

    t0 = time.perf_counter()
    ours = minimize_law(law, logx, logy, args.delta)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    brute = brute_force(logx, logy, args.delta)
    t_brute = time.perf_counter() - t0

    t_boot = None
    if args.bootstrap:
        import pandas as pd

        from scalinglab.fit import fit

        table = pd.DataFrame({"N": np.exp(logx[0]), "D": np.exp(logx[1]), "L": np.exp(logy)})
        t0 = time.perf_counter()
        fit(table, x="N,D", y="L", law="chinchilla", bootstrap=args.bootstrap, delta=args.delta)
        t_boot = time.perf_counter() - t0

    result = {"points": args.points, "bootstrap": args.bootstrap, "bootstrap_s": t_boot,
              "ours_s": t_ours, "brute_force_s": t_brute,
              "speedup": t_brute / t_ours, "ours_objective": ours.objective,
              "brute_force_objective": brute.objective,
              "objective_gap": ours.objective - brute.objective,
              "ours_params": law.report(ours.theta), "brute_force_params": law.report(brute.theta)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"chinchilla fit on {args.points} points (one core)")
    print(f"  ours (projected starts + polish): {t_ours:8.3f} s  objective {ours.objective:.12g}")
    print(f"  brute force (4,500 starts):       {t_brute:8.3f} s  objective {brute.objective:.12g}")
    print(f"  speedup {t_brute / t_ours:.0f}x, objective gap (ours - brute) "
          f"{ours.objective - brute.objective:.3g}")
    if t_boot is not None:
        print(f"  fit + {args.bootstrap} bootstrap refits:  {t_boot:8.3f} s")
    for name in law.param_names:
        print(f"  {name:>5}: ours {result['ours_params'][name]:.6g}  "
              f"brute {result['brute_force_params'][name]:.6g}  true {TRUE[name]}")


if __name__ == "__main__":
    main()
