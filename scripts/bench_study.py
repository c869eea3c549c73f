"""Benchmark, end to end: the default study through `scalinglab-train -m experiment=study`
against the same 14 jobs in a plain PyTorch loop, and in Lightning's loop with nothing of
scalinglab's (the floor any Lightning tool starts from).

All three sides do the same work, job for job: the same model (scalinglab.models), the same
MNIST-1D split (the same 500 training examples held out to validate), AdamW parameter groups,
warmup + cosine schedule, batches, epochs and dropout; the validation set and as many training
examples evaluated at every epoch's end and at the learning curve's log-spaced steps; the test
split once at the end. The `lightning` side is a minimal LightningModule in a bare Trainer: no
callbacks, logger, checkpoints or `self.log`. Each side runs as a fresh process with a fresh
data cache and pays its own start-up; every repeat rotates which side goes first.

The benchmark checks that the work was the same: each side's per-job validation and test losses,
and the curve's validation losses, are compared with scalinglab's `run.json` and `curve.csv`.
It prints the wall times, the ratios (median and range over repeats) and, per job, the seconds
each side spent training (scalinglab's `time_s`).

    python scripts/bench_study.py [--repeats 3] [--json] [OVERRIDE ...]
"""

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

SIDES = ("scalinglab", "lightning", "plain")
# scalinglab's own choices, restated so that the plain side imports no Lightning (importing
# scalinglab.data or scalinglab.callbacks would): which examples validate (data/tensors.py)
# and the learning curve's steps (callbacks/curve.py). Were they to drift, the losses compared
# at the end would differ.
VAL_SEED = 0


def log_steps(total: int, points: int) -> list[int]:
    """The learning curve's steps: `points` steps evenly spaced in log below `total`."""
    if points <= 0 or total <= 1:
        return []
    ratio = total ** (1 / points)
    return sorted({round(ratio**k) for k in range(points)} - {total})


def study_jobs(overrides: list[str]) -> dict[str, dict]:
    """The study's jobs as `-m` expands them (a command-line value replaces the swept one), by
    name, in launch order: what the other sides need of each job's config, resolved to plain
    values. Composed before any side is timed: a plain script has its settings at hand."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from scalinglab import CONF_DIR
    from scalinglab.launch.grid import grid_jobs, sweep_overrides

    parsed = OverridesParser.create().parse_overrides(overrides)
    single = [o.input_line for o in parsed if not o.is_sweep_override()]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        base = compose("train", overrides=["experiment=study", *single],
                       return_hydra_config=True)
        grid = base.hydra.sweeper.params
        if extra := [o.input_line for o in parsed
                     if o.is_sweep_override() and o.get_key_element() not in grid]:
            raise SystemExit(f"bench_study.py times the study's own grid ({', '.join(grid)}); "
                             f"it sweeps nothing else: {' '.join(extra)}")
        cfgs = [compose("train", overrides=["experiment=study", *job])
                for job in grid_jobs(sweep_overrides(grid, overrides))]
    data, trainer = cfgs[0].data, cfgs[0].trainer
    if (data._target_ != "scalinglab.data.MNIST1D" or data.train_size is not None
            or data.val_from_train is None or trainer.devices != 1 or trainer.num_nodes != 1):
        raise SystemExit("bench_study.py runs the study on one device, on MNIST-1D with all of "
                         "its training examples and some held out to validate "
                         "(data.val_from_train)")
    return {f"{c.model.family} {c.model.target_params}": {
        "model": OmegaConf.to_container(c.model, resolve=True),
        "module": OmegaConf.to_container(c.module, resolve=True), "seed": c.seed,
        "data": {k: c.data[k] for k in ("num_samples", "train_split", "seed", "length",
                                        "batch_size", "val_from_train")},
        "trainer": {"max_epochs": c.trainer.max_epochs, "accelerator": c.trainer.accelerator},
        "curve": {"points": c.curve.points},
    } for c in cfgs}


def _data(cfg: DictConfig, device) -> dict:
    """MNIST-1D as scalinglab's datamodule splits it (train, held-out validation, test), on the
    device training runs on."""
    import torch
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split = cfg.data.num_samples, cfg.data.train_split
    args.seed, args.final_seq_length = cfg.data.seed, cfg.data.length  # as data/mnist1d.py
    d = make_dataset(args)  # generated, as scalinglab's first job does (then cached)
    x = torch.as_tensor(d["x"], dtype=torch.float32).unsqueeze(1)
    y = torch.as_tensor(d["y"], dtype=torch.long)
    held = torch.zeros(len(x), dtype=torch.bool)  # scalinglab's data.val_from_train rule
    held[torch.randperm(len(x), generator=torch.Generator().manual_seed(VAL_SEED))[
        : cfg.data.val_from_train]] = True
    n = int(held.sum())
    splits = {"train": (x[~held], y[~held]), "val": (x[held], y[held]),
              "train_eval": (x[~held][:n], y[~held][:n]),
              "test": (torch.as_tensor(d["x_test"], dtype=torch.float32).unsqueeze(1),
                       torch.as_tensor(d["y_test"], dtype=torch.long))}
    return {k: (a.to(device), b.to(device)) for k, (a, b) in splits.items()}


def _recipe(cfg: DictConfig, model, steps: int):
    """module.Task's optimizer and schedule: AdamW over scalinglab's parameter groups (no decay
    on vectors; muP's hidden group), linear warmup, then cosine decay to min_lr_ratio."""
    import torch

    from scalinglab.models.parametrization import param_groups

    m = cfg.module
    opt = torch.optim.AdamW(param_groups(model, m.lr, m.weight_decay), lr=m.lr,
                            betas=tuple(m.betas), fused=True)
    warmup = int(m.warmup_frac * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return m.min_lr_ratio + (1 - m.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Epochs:
    """Training batches as scalinglab's DeviceBatches draws them: a permutation per epoch,
    seeded by the run's seed plus the epoch, the last partial batch dropped."""

    def __init__(self, x, y, batch_size: int, seed: int) -> None:
        self.x, self.y, self.batch_size, self.seed, self.epoch = x, y, batch_size, seed, -1

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def __iter__(self):
        import torch

        self.epoch += 1
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.x), generator=g)[: len(self) * self.batch_size]
        order = order.to(self.x.device)
        for idx in order.view(len(self), self.batch_size):
            yield self.x[idx], self.y[idx]


class Batches:
    """An evaluation loader of one whole batch (the study's splits fit eval_batch_size)."""

    def __init__(self, x, y) -> None:
        self.batch = (x, y)

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield self.batch


def _losses(model, data: dict, splits=("val", "train_eval")) -> list[float]:
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = [F.cross_entropy(model(data[s][0]), data[s][1]).item() for s in splits]
    model.train(was_training)
    return out


def _device(cfg: DictConfig):
    """Where the other sides train: where scalinglab's `trainer.accelerator` puts it (a GPU
    when one is visible, unless the CPU is asked for)."""
    import torch

    gpu = cfg.trainer.accelerator != "cpu" and torch.cuda.is_available()
    return torch.device("cuda" if gpu else "cpu")


def _job(cfg: DictConfig, data: dict):
    """The job's seeded model on the data's device, its training batches and the curve's
    steps."""
    import torch

    from scalinglab.models import build_model

    torch.manual_seed(cfg.seed)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True),
                        {"input_shape": (1, cfg.data.length), "num_outputs": 10}).model
    model.to(data["train"][0].device)
    batches = Epochs(*data["train"], cfg.data.batch_size, cfg.seed)
    steps = len(batches) * cfg.trainer.max_epochs
    return model, batches, steps, set(log_steps(steps, cfg.curve.points))


def plain(jobs: dict[str, DictConfig]) -> dict:
    """The study's jobs, one after another, in a plain PyTorch loop."""
    import torch.nn.functional as F

    first = next(iter(jobs.values()))
    data = _data(first, _device(first))
    results = {}
    for name, cfg in jobs.items():
        model, batches, steps, curve_steps = _job(cfg, data)
        opt, sched = _recipe(cfg, model, steps)
        curve, step, t0 = {}, 0, time.perf_counter()
        for _ in range(cfg.trainer.max_epochs):
            for x, y in batches:
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                if step in curve_steps:
                    curve[step] = _losses(model, data)[0]
            val = _losses(model, data)[0]
        test = _losses(model, data, ("test",))[0]
        results[name] = {"val_loss": val, "test_loss": test, "curve": curve,
                         "time_s": time.perf_counter() - t0}
    assert "lightning" not in sys.modules, "the plain side must not pay Lightning's import"
    return results


def lightning(jobs: dict[str, DictConfig]) -> dict:
    """The study's jobs in Lightning's loop with nothing added: a minimal LightningModule
    (the same recipe, evaluations kept in attributes, no self.log, batches already on the
    device passed as they are) in a bare Trainer."""
    import lightning.pytorch as pl
    import torch.nn.functional as F

    class Minimal(pl.LightningModule):
        def __init__(self, cfg, model, steps: int, curve_steps: set[int]) -> None:
            super().__init__()
            self.cfg, self.model, self.steps, self.curve_steps = cfg, model, steps, curve_steps
            self.curve, self.val, self.test = {}, None, None

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.model(batch[0]), batch[1])

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            return batch  # on the device already; Lightning's own walk costs ~0.3 ms a batch

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            if self.global_step in self.curve_steps:
                self.curve[self.global_step] = _losses(self.model, data)[0]

        def validation_step(self, batch, batch_idx, dataloader_idx=0) -> None:
            loss = F.cross_entropy(self.model(batch[0]), batch[1]).item()
            if dataloader_idx == 0:
                self.val = loss

        def test_step(self, batch, batch_idx) -> None:
            self.test = F.cross_entropy(self.model(batch[0]), batch[1]).item()

        def configure_optimizers(self):
            opt, sched = _recipe(self.cfg, self.model, self.steps)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    first = next(iter(jobs.values()))
    data = _data(first, _device(first))
    device = data["train"][0].device
    results = {}
    for name, cfg in jobs.items():
        model, batches, steps, curve_steps = _job(cfg, data)
        module = Minimal(cfg, model, steps, curve_steps)
        trainer = pl.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                             max_epochs=cfg.trainer.max_epochs, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0)
        t0 = time.perf_counter()
        trainer.fit(module, train_dataloaders=batches,
                    val_dataloaders=[Batches(*data["val"]), Batches(*data["train_eval"])])
        elapsed = time.perf_counter() - t0
        trainer.test(module, dataloaders=Batches(*data["test"]), verbose=False)
        results[name] = {"val_loss": module.val, "test_loss": module.test,
                         "curve": module.curve, "time_s": elapsed}
    return results


def records(sweep_dir: Path) -> dict:
    """scalinglab's side as the other sides report theirs, from its run.json and curve.csv."""
    out = {}
    for path in sorted(sweep_dir.glob("*/run.json")):
        r = json.loads(path.read_text())
        with open(path.parent / "curve.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        name = f"{r['family']} {r['config']['model']['target_params']}"
        out[name] = {"val_loss": r["val_loss"], "test_loss": r["test_loss"],
                     "curve": {int(row["step"]): float(row["val_loss"]) for row in rows[:-1]},
                     "time_s": r["time_s"], "setup_s": r["setup_s"]}
    return out


def disagreements(ours: dict, theirs: dict) -> list[str]:
    """Where another side's losses differ from scalinglab's records at 4 decimals, each as
    "job what: scalinglab's against the other side's"."""
    def differ(a: float | None, b: float | None) -> bool:
        return a is None or b is None or not abs(a - b) < 5e-5

    if sorted(ours) != sorted(theirs):
        return [f"jobs differ: {sorted(set(ours) ^ set(theirs))}"]
    out = []
    for name, r in ours.items():
        pairs = [("val_loss", r["val_loss"], theirs[name]["val_loss"]),
                 ("test_loss", r["test_loss"], theirs[name]["test_loss"])]
        curve = {int(k): v for k, v in theirs[name]["curve"].items()}
        if sorted(curve) != sorted(r["curve"]):
            out.append(f"{name} curve steps: {sorted(r['curve'])} against {sorted(curve)}")
        pairs += [(f"curve step {s}", v, curve.get(s)) for s, v in r["curve"].items()]
        out += [f"{name} {what}: {a} against {b}" for what, a, b in pairs if differ(a, b)]
    return out


def run_side(side: str, tmp: str, overrides: list[str], jobs: Path) -> tuple[float, dict]:
    """One side as a fresh process: its wall time and its per-job results."""
    env = {**os.environ, "SCALINGLAB_DATA_DIR": f"{tmp}/data", "WANDB_MODE": "disabled"}
    if side == "scalinglab":  # its data cache starts empty: the first job generates it
        cmd = [str(Path(sys.executable).parent / "scalinglab-train"), "-m", "experiment=study",
               f"hydra.sweep.dir={tmp}/sweep", *overrides]
    else:
        cmd = [sys.executable, __file__, "--side", side, "--jobs", str(jobs),
               "--out", f"{tmp}/results.json"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"the {side} side failed (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    results = (records(Path(tmp) / "sweep") if side == "scalinglab"
               else json.loads(Path(f"{tmp}/results.json").read_text()))
    return wall, results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--side", choices=("plain", "lightning"), help=argparse.SUPPRESS)
    p.add_argument("--jobs", help=argparse.SUPPRESS)  # the composed jobs a --side runs
    p.add_argument("--out", help=argparse.SUPPRESS)  # where a --side writes its results
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every side")
    args = p.parse_args()
    if args.side:
        jobs = {name: OmegaConf.create(c)
                for name, c in json.loads(Path(args.jobs).read_text()).items()}
        results = {"plain": plain, "lightning": lightning}[args.side](jobs)
        Path(args.out).write_text(json.dumps(results))
        return
    wall = {s: [] for s in SIDES}
    jobs = {s: {} for s in SIDES}  # per job, each side's training seconds over the repeats
    problems = []
    with tempfile.TemporaryDirectory() as work:
        composed = Path(work) / "jobs.json"
        composed.write_text(json.dumps(study_jobs(args.overrides)))
        for r in range(args.repeats):
            results = {}
            for side in SIDES[r % len(SIDES):] + SIDES[: r % len(SIDES)]:
                with tempfile.TemporaryDirectory() as tmp:
                    seconds, results[side] = run_side(side, tmp, args.overrides, composed)
                wall[side].append(seconds)
                for name, res in results[side].items():
                    jobs[side].setdefault(name, []).append(res["time_s"])
            for side in ("lightning", "plain"):
                problems += [f"{side}: {d}" for d in disagreements(results["scalinglab"],
                                                                   results[side])]

    def ratio(a: str, b: str) -> dict:
        rs = [x / y for x, y in zip(wall[a], wall[b], strict=True)]
        return {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}

    result = {"wall_s": wall, "plain/scalinglab": ratio("plain", "scalinglab"),
              "plain/lightning": ratio("plain", "lightning"),
              "lightning/scalinglab": ratio("lightning", "scalinglab"),
              "per_job_time_s": {s: {n: statistics.median(v) for n, v in jobs[s].items()}
                                 for s in SIDES},
              "disagreements": problems}
    if args.json:
        print(json.dumps(result))
        return
    print(f"default study, {args.repeats} repeats (wall seconds, fresh processes):")
    for side in SIDES:
        print(f"  {side:10s} {', '.join(f'{s:.1f}' for s in wall[side])}")
    for key in ("plain/scalinglab", "plain/lightning", "lightning/scalinglab"):
        q = result[key]
        print(f"  {key:21s} {q['median']:.3f} ({q['min']:.2f}-{q['max']:.2f})")
    print("training seconds per job, medians (scalinglab: the records' time_s):")
    print(f"  {'job':12s} " + " ".join(f"{s:>10s}" for s in SIDES))
    for name in result["per_job_time_s"]["scalinglab"]:
        print(f"  {name:12s} " + " ".join(f"{result['per_job_time_s'][s].get(name, math.nan):10.2f}"
                                          for s in SIDES))
    print("the same work: every side's val, test and curve losses equal scalinglab's to 4 "
          "decimals" if not problems else "DIFFERENT WORK:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
