"""Benchmark: scalinglab's training path vs a hand-written PyTorch loop, side by side.

Both run in this process, on the same model, device-resident data, AdamW param groups, warmup +
cosine schedule, batch size, number of steps and thread count, reading the loss back every 50
steps. The scalinglab side is the code `scalinglab-train` runs (the composed default config,
`train/job.build`: datamodule, LightningModule, run recorder, checkpoints, CSV logger) in
Lightning's own loop; its clock runs from the first to the last training step with validation
time taken out, as the raw loop does no validation. Repeats pair the two sides, A B then B A;
the ratio is the median of the paired ratios, printed with their range.

    python scripts/bench_train.py [--repeats 5] [--epochs 40] [--cases tiny,medium,cnn]
                                  [--no-val] [--compile] [--json] [OVERRIDE ...]

The `lm` case is the Transformer on byte-level text (module=lm). The `loader0` and `loader2`
cases serve the same MNIST-1D through a user-style datamodule of
plain `DataLoader`s (0 and 2 workers, `LoaderData` below) instead of scalinglab's
device-resident batches, and the raw loop iterates the same DataLoader.

OVERRIDEs are Hydra overrides for both sides, e.g. data.num_samples=50000 for 8x longer epochs.

Both clocks start after the first step; --compile adds scalinglab with model.compile=true to
the same repeats, with its first step (where it compiles) timed apart.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch.utils.data import DataLoader, TensorDataset

from scalinglab import CONF_DIR
from scalinglab.data import MNIST1D
from scalinglab.train.job import build


class LoaderData(MNIST1D):
    """MNIST-1D served as a user's datamodule serves data: DataLoaders over CPU tensors, with
    `num_workers` workers, each batch moved to the device by Lightning."""

    def __init__(self, num_workers: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_workers = num_workers

    def _loader(self, x, y, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                          drop_last=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.x_train, self.y_train, self.per_rank_batch(), True)

    def val_dataloader(self) -> list[DataLoader]:
        n = min(len(self.x_train), len(self.x_val))
        return [self._loader(self.x_val, self.y_val, self.eval_batch_size, False),
                self._loader(self.x_train[:n], self.y_train[:n], self.eval_batch_size, False)]


LOADER = ["data._target_=__main__.LoaderData", "data.placement=host"]
CASES = {  # name: (overrides, batch size on CPU)
    "tiny": (["model=mlp", "model.depth=2", "model.width=64"], 256),
    "medium": (["model=mlp", "model.depth=4", "model.width=512"], 256),
    "cnn": (["model=cnn", "model.depth=3", "model.width=32"], 256),
    "loader0": (["model=cnn", "model.depth=3", "model.width=32", *LOADER,
                 "+data.num_workers=0"], 256),
    "loader2": (["model=cnn", "model.depth=3", "model.width=32", *LOADER,
                 "+data.num_workers=2"], 256),
    # byte-level text, 480 windows of 64: 15 steps an epoch, as the MNIST-1D cases
    "lm": (["model=transformer", "model.width=64", "data=text", "module=lm",
            "data.train_size=480"], 32),
}
LOG_EVERY = 50


class TrainClock(pl.Callback):
    """Training time from the end of the first step to the last step, with validation (from
    its start hook to its end hook) taken out; the first step (where torch.compile compiles)
    is timed on its own."""

    def on_train_start(self, trainer, pl_module):
        self.validation = 0.0
        self.t0 = time.perf_counter()
        self.first_step_s = None

    def on_validation_start(self, trainer, pl_module):
        self.v0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        self.validation += time.perf_counter() - self.v0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.first_step_s is None:
            self.first_step_s = time.perf_counter() - self.t0
            self.t0 = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.t0 - self.validation


def make(case: str, epochs: int, batch: int, out: str, data_dir: str, no_val: bool = False,
         compile: bool = False, user: tuple[str, ...] = ()):
    overrides, _ = CASES[case]
    extra = ["+trainer.limit_val_batches=0"] if no_val else []
    extra += ["model.compile=true"] if compile else []
    extra += list(user)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"data.batch_size={batch}",
                                          f"trainer.max_epochs={epochs}",
                                          "trainer.enable_progress_bar=false", *extra])
    with open_dict(cfg):
        cfg.paths.output_dir, cfg.paths.data_dir = out, data_dir
    return cfg


def run_scalinglab(cfg) -> tuple[float, int, float]:
    """Seconds for steps 2..N, that number of steps, and the first step's seconds."""
    job = build(cfg)
    clock = TrainClock()
    job.trainer.callbacks.append(clock)
    job.trainer.fit(job.module, datamodule=job.datamodule)
    return clock.seconds, job.trainer.global_step - 1, clock.first_step_s


def run_raw(cfg, epochs: int) -> tuple[float, int]:
    """The hand-written loop: same model, data, optimizer, schedule and batch size. Seconds for
    steps 2..N, and that number of steps."""
    job = build(cfg)  # the same objects, minus Lightning's loop
    datamodule, module = job.datamodule, job.module
    datamodule.setup()
    model, x, y = module.model, datamodule.x_train, datamodule.y_train
    loss_fn = module.loss  # the task's own loss (cross-entropy, per token for the LM case)
    device = job.trainer.strategy.root_device  # the data's device: the trainer's
    model.to(device)
    bs, n = datamodule.batch_size, len(x)
    per_epoch = n // bs
    steps = epochs * per_epoch
    opt_cfg = _optimizer_for(module, steps)
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    model.train()
    g = torch.Generator().manual_seed(0)
    loader = datamodule.train_dataloader() if isinstance(datamodule, LoaderData) else None

    def batches():
        if loader is not None:  # the same DataLoader the scalinglab side trains from
            for xb, yb in loader:
                yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            return
        order = torch.randperm(n, generator=g)[: per_epoch * bs].view(per_epoch, bs)
        for idx in order:
            yield x[idx], y[idx]

    t0 = time.perf_counter()
    step = 0
    for _ in range(epochs):
        for xb, yb in batches():
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % LOG_EVERY == 0:
                loss.item()
            step += 1
            if step == 1:  # the clock starts after the first step, as on our side
                t0 = time.perf_counter()
    return time.perf_counter() - t0, steps - 1


def _optimizer_for(module, steps: int) -> dict:
    """The module's own optimizer and schedule for `steps` steps: configure_optimizers reads
    the run's length from its trainer (a step budget needs no data)."""
    module.trainer = pl.Trainer(max_epochs=-1, max_steps=steps, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False)
    return module.configure_optimizers()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default="tiny,medium,cnn")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--no-val", action="store_true",
                   help="turn validation off on the scalinglab side (default: on, off the clock)")
    p.add_argument("--compile", action="store_true",
                   help="also time scalinglab with model.compile=true, in the same repeats")
    p.add_argument("--json", action="store_true")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for both sides")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            batch = CASES[case][1] * (4 if torch.cuda.is_available() else 1)
            raw_sps, ours_sps, compiled_sps, compile_s = [], [], [], []
            for r in range(args.repeats):
                out = str(Path(tmp) / f"{case}-{r}")
                cfg = make(case, args.epochs, batch, out, str(Path(tmp) / "data"), args.no_val,
                           user=args.overrides)
                # A B, then B A: whichever runs second in a pair does not always get the edge
                for side in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
                    if side == "ours":
                        seconds, steps, _ = run_scalinglab(cfg)
                        ours_sps.append(steps / seconds)
                    else:
                        seconds, steps = run_raw(cfg, args.epochs)
                        raw_sps.append(steps / seconds)
                if args.compile:
                    cfg = make(case, args.epochs, batch, out + "-c", str(Path(tmp) / "data"),
                               args.no_val, compile=True, user=args.overrides)
                    seconds, steps, first = run_scalinglab(cfg)
                    compiled_sps.append(steps / seconds)
                    compile_s.append(first)
            ratios = [o / r for o, r in zip(ours_sps, raw_sps, strict=True)]
            result = {"name": case, "batch": batch, "steps": steps,
                      "raw_steps_per_s": statistics.median(raw_sps),
                      "scalinglab_steps_per_s": statistics.median(ours_sps),
                      "ratio": statistics.median(ratios),
                      "ratio_min": min(ratios), "ratio_max": max(ratios)}
            if args.compile:
                result.update(
                    compiled_steps_per_s=statistics.median(compiled_sps),
                    compile_speedup=statistics.median(
                        c / o for c, o in zip(compiled_sps, ours_sps, strict=True)),
                    compile_first_step_s=compile_s[0])  # cold; later repeats reuse the code
            results.append(result)
    if args.json:
        print(json.dumps({"cases": results}))
        return
    device = "cuda" if torch.cuda.is_available() else f"cpu, {args.threads} threads"
    print(f"steps/s, median of {args.repeats} interleaved repeats ({device})")
    for r in results:
        print(f"  {r['name']:>7} (batch {r['batch']}, {r['steps']} steps): raw "
              f"{r['raw_steps_per_s']:8.1f}  scalinglab {r['scalinglab_steps_per_s']:8.1f}  "
              f"ratio {r['ratio']:.3f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})")
        if "compile_speedup" in r:
            print(f"  {'':>7} model.compile=true: {r['compiled_steps_per_s']:8.1f} steps/s, "
                  f"x{r['compile_speedup']:.2f} vs eager; first step of the first repeat "
                  f"(compiling) {r['compile_first_step_s']:.1f} s")


if __name__ == "__main__":
    main()
