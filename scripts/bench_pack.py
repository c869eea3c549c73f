"""Benchmark: a sweep trained packed (`pack=[...]`) against the same sweep unpacked.

Each side is `scalinglab-train -m` as a user runs it (`python -m scalinglab.train -m`), in a
fresh process, into its own sweep directory, with the data cache made beforehand. The wall
clock of each is printed with their ratio, then how far the two sides' records and curves are
apart: every job's metrics and curve points, the largest difference, and how many jobs agree to
4 decimals.

A job trained twice is equal to 4 decimals only if both runs round alike: a batched matmul
rounds differently from K small ones, and a long run at a high learning rate amplifies that.
`--control` trains the unpacked side a second time on one thread (a different summation order,
nothing else changed) and compares it with the first the same way: the spread any rounding
change gives, to read the packed side's differences against.

    python scripts/bench_pack.py --pack module.lr experiment=lr_transfer
    python scripts/bench_pack.py --pack seed experiment=lr_transfer model.width=32 \
        model.parametrization=sp module.lr=0.004 seed=0,1,2,3,4,5,6,7
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

METRICS = ("val_loss", "val_acc", "train_loss", "train_acc", "test_loss", "test_acc",
           "best_val_loss")
CURVE = ("lr", "val_loss", "val_acc", "train_loss", "train_acc")


def sweep(args: list[str], out: Path, env: dict) -> float:
    """One side: the sweep in a fresh process; its wall time in seconds."""
    start = time.perf_counter()  # `scalinglab-train` is `python -m scalinglab.train`
    done = subprocess.run([sys.executable, "-m", "scalinglab.train", "-m", *args,
                           "trainer.enable_progress_bar=false",
                           f"hydra.sweep.dir={out}"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):  # 3: some jobs diverged, which both sides must agree on
        sys.exit(f"{out.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def records(directory: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in directory.glob("*/run.json")}


def compare(a: Path, b: Path) -> dict:
    """How far two sweeps' records and curves are apart, job by job (jobs by directory)."""
    ra, rb = records(a), records(b)
    if set(ra) != set(rb):
        sys.exit(f"the sweeps trained different jobs: {sorted(set(ra) ^ set(rb))}")
    worst, agree, status = 0.0, 0, 0
    for job in sorted(ra):
        x, y = ra[job], rb[job]
        status += x["status"] == y["status"] and x["steps"] == y["steps"]
        diffs = [abs(x[k] - y[k]) for k in METRICS if x[k] is not None and y[k] is not None]
        ca, cb = pd.read_csv(a / job / "curve.csv"), pd.read_csv(b / job / "curve.csv")
        if len(ca) == len(cb):
            diffs.append(float((ca[list(CURVE)] - cb[list(CURVE)]).abs().max().max()))
        else:
            diffs.append(float("inf"))
        diffs = [d for d in diffs if d == d]  # a NaN on both sides (a diverged job) agrees
        worst = max([worst, *diffs])
        agree += max(diffs, default=0.0) < 5e-5
    return {"jobs": len(ra), "same_status_and_steps": status, "agree_to_4_decimals": agree,
            "largest_difference": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", required=True, help="the packed keys, e.g. module.lr,seed")
    parser.add_argument("--control", action="store_true",
                        help="also train the unpacked side on one thread, and compare")
    parser.add_argument("--keep", help="keep the sweep directories here")
    parser.add_argument("overrides", nargs="+")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-pack-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_MODE": "disabled", "SCALINGLAB_DATA_DIR": str(root / "data")}
    # the dataset generated once, outside both clocks
    sweep(["model.width=8", "trainer.max_steps=1", "trainer.limit_val_batches=0"],
          root / "warm", env)
    packed = sweep([*args.overrides, f"pack=[{args.pack}]"], root / "packed", env)
    unpacked = sweep(args.overrides, root / "unpacked", env)
    print(f"packed {packed:.1f} s, unpacked {unpacked:.1f} s: {unpacked / packed:.2f}x faster "
          f"packed ({len(records(root / 'packed'))} jobs)")
    print("packed vs unpacked:", json.dumps(compare(root / "packed", root / "unpacked")))
    if args.control:
        sweep(args.overrides, root / "one-thread", {**env, "OMP_NUM_THREADS": "1"})
        print("unpacked on 1 thread vs 2:",
              json.dumps(compare(root / "one-thread", root / "unpacked")))
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
