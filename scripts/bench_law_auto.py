"""Benchmark: `--law auto` on the learning curves of Alabdulmohsin et al.'s (2022) scaling-law
benchmark, as `scalinglab-fit` runs it: per curve, every one-x law fitted to the training rows,
one chosen by extrapolation inside them, the `Training == 0` rows held out and scored.

The data is public (google-research/google-research, revisiting_neural_scaling_laws/data,
benchmark.lang.csv and benchmark.vision.csv); download it once and point this script at it:

    python scripts/bench_law_auto.py benchmark.lang.csv benchmark.vision.csv [--workers 2]
        [--json OUT]

Prints the wall time, the number of curves, and per law how often it was chosen; --json writes
each curve's choice and parameters, to compare two versions' answers.
"""

import argparse
import json
import time
import warnings
from collections import Counter

import pandas as pd

from scalinglab.fit import fit

CURVE = ["Domain", "Task", "Model"]


def load(paths: list[str]) -> pd.DataFrame:
    """The curves of the given files, one group per (domain, task, model); duplicated rows
    (the language file repeats one curve) kept once."""
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True).drop_duplicates()
    table["Model"] = table["Model"].astype(str)
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("csv", nargs="+", help="benchmark.lang.csv, benchmark.vision.csv")
    p.add_argument("--workers", type=int, default=1, help="processes (scalinglab-fit --workers)")
    p.add_argument("--json", default=None, help="write each curve's choice and parameters here")
    args = p.parse_args()
    table = load(args.csv)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = fit(table, x="Seen Examples", y="Loss", law="auto", group_by=CURVE,
                     holdout="Training == 0", workers=args.workers)
    seconds = time.perf_counter() - t0
    chosen = Counter(f.law for f in report.fits)
    print(f"{len(report.fits)} curves, --law auto in {seconds:.1f} s with {args.workers} "
          "worker(s); chosen: "
          + ", ".join(f"{law} {n}" for law, n in chosen.most_common()))
    if args.json:
        doc = {"seconds": seconds, "curves": [
            {"curve": f.label, "law": f.law, "params": f.params, "objective": f.objective,
             "rmse_log_holdout": f.rmse_log_holdout, "scores": f.selection["scores"]}
            for f in report.fits]}
        with open(args.json, "w") as out:
            json.dump(doc, out, indent=1)


if __name__ == "__main__":
    main()
