"""Benchmark, end to end: the default study through `scalinglab-train -m experiment=study`
against a plain PyTorch script that trains the same 14 configurations in one process.

The plain side takes each job's resolved config from the same Hydra composition and trains the
same model (scalinglab.models, no Lightning), on the same MNIST-1D split (the same 500 training
examples held out to validate), with the same AdamW parameter groups, warmup + cosine schedule,
batch size, epochs and dropout, evaluates the validation set and as many training examples at
every epoch's end, and the test split once at the end, as scalinglab does. Both
sides run as fresh processes with a fresh data cache and the same thread count, so each pays
its own start-up; pairs alternate which side runs first. Prints the wall times and the ratio
plain / scalinglab (1.0: no overhead at all).

    python scripts/bench_study.py [--repeats 2] [--json] [OVERRIDE ...]
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def plain(overrides: list[str], data_dir: str) -> None:
    """The study's jobs, one after another, in plain PyTorch."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from hydra import compose, initialize_config_dir
    from mnist1d.data import get_dataset_args, make_dataset
    from omegaconf import OmegaConf

    from scalinglab import CONF_DIR
    from scalinglab.data.tensors import VAL_SEED
    from scalinglab.launch.summary import grid_jobs
    from scalinglab.models import build_model

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        base = compose("train", overrides=["experiment=study", *overrides],
                       return_hydra_config=True)
    jobs = grid_jobs([f"{k}={v}" for k, v in base.hydra.sweeper.params.items()])
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 5000, 0.8, 42
    d = make_dataset(args)  # generated once, as scalinglab's first job does (then cached)
    np.savez(Path(data_dir) / "plain-mnist1d.npz", **{k: d[k] for k in ("x", "y")})
    x = torch.as_tensor(d["x"], dtype=torch.float32).unsqueeze(1)
    y = torch.as_tensor(d["y"], dtype=torch.long)
    xt = torch.as_tensor(d["x_test"], dtype=torch.float32).unsqueeze(1)
    yt = torch.as_tensor(d["y_test"], dtype=torch.long)
    held = torch.zeros(len(x), dtype=torch.bool)  # scalinglab's data.val_from_train rule
    held[torch.randperm(len(x), generator=torch.Generator().manual_seed(VAL_SEED))[
        : base.data.val_from_train]] = True
    xv, yv, x, y = x[held], y[held], x[~held], y[~held]
    for job in jobs:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=["experiment=study", *overrides, *job])
        torch.manual_seed(cfg.seed)
        model = build_model(OmegaConf.to_container(cfg.model, resolve=True),
                            {"input_shape": (1, 40), "num_outputs": 10}).model
        decay = [p for p in model.parameters() if p.ndim >= 2]
        rest = [p for p in model.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.module.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=cfg.module.lr,
                                betas=tuple(cfg.module.betas), fused=True)
        bs, epochs = cfg.data.batch_size, cfg.trainer.max_epochs
        per_epoch = len(x) // bs
        total, warmup = per_epoch * epochs, int(cfg.module.warmup_frac * per_epoch * epochs)

        def factor(step: int, total=total, warmup=warmup) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        t0 = time.perf_counter()
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
            for idx in order[: per_epoch * bs].view(per_epoch, bs):
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            with torch.no_grad():
                val = F.cross_entropy(model(xv), yv).item()
                F.cross_entropy(model(x[: len(xv)]), y[: len(xv)]).item()
        with torch.no_grad():
            test = F.cross_entropy(model(xt), yt).item()
        print(f"{cfg.model.family} {cfg.model.target_params}: val_loss {val:.4f} test_loss "
              f"{test:.4f} ({time.perf_counter() - t0:.2f} s)", flush=True)


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)  # the plain side
    p.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="Hydra overrides for both sides")
    args = p.parse_args()
    if args.plain:
        plain(args.overrides, args.data_dir)
        return
    ours, theirs = [], []
    for r in range(args.repeats):
        for side in ("ours", "plain") if r % 2 == 0 else ("plain", "ours"):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**os.environ, "SCALINGLAB_DATA_DIR": f"{tmp}/data",
                       "WANDB_MODE": "disabled"}
                Path(f"{tmp}/data").mkdir()
                if side == "ours":
                    exe = str(Path(sys.executable).parent / "scalinglab-train")
                    ours.append(timed([exe, "-m", "experiment=study",
                                       f"hydra.sweep.dir={tmp}/sweep", *args.overrides], env))
                else:
                    theirs.append(timed([sys.executable, __file__, "--plain", "--data-dir",
                                         f"{tmp}/data", *args.overrides], env))
    ratios = [t / o for t, o in zip(theirs, ours, strict=True)]
    result = {"scalinglab_s": ours, "plain_s": theirs, "ratio": statistics.median(ratios),
              "ratio_min": min(ratios), "ratio_max": max(ratios)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"default study, {args.repeats} paired repeats: scalinglab "
          f"{', '.join(f'{s:.1f}' for s in ours)} s; plain PyTorch "
          f"{', '.join(f'{s:.1f}' for s in theirs)} s; plain / scalinglab "
          f"{result['ratio']:.3f} ({result['ratio_min']:.2f}-{result['ratio_max']:.2f})")


if __name__ == "__main__":
    main()
