"""One training job: `build(cfg, output_dir)` makes everything Lightning needs from the config,
checking every value before any training; `fit(job)` trains it, resuming its latest checkpoint,
and returns its run record, measured on the final weights. What happens around it (skip,
failure, preemption, exit codes) is train/run.py's."""

import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint, Timer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, check_number
from scalinglab.callbacks.curve import LearningCurve
from scalinglab.callbacks.preemption import Preemption, submitit_signal
from scalinglab.callbacks.recorder import RunRecorder
from scalinglab.callbacks.wandb_summary import WandbSummary
from scalinglab.identity import job_identity
from scalinglab.identity import register_resolver as register_resolvers
from scalinglab.measure import (
    dataset_size,
    examples_per_step,
    forward_flops_per_example,
    rng_untouched,
    training_flops,
)
from scalinglab.models import build_model, data_args
from scalinglab.models.factory import Built, unwrap
from scalinglab.records.schema import RunRecord

MATMUL_PRECISIONS = ("highest", "high", "medium")


@dataclass
class Job:
    """A built job: what `trainer.fit` takes, and the callbacks whose state the records need:
    one recorder and one curve, or one per member of a pack (train/pack.py)."""

    cfg: DictConfig
    output_dir: Path  # its checkpoints are in output_dir/checkpoints
    datamodule: pl.LightningDataModule
    module: pl.LightningModule
    trainer: pl.Trainer
    recorders: list[RunRecorder]
    curves: list[LearningCurve]

    @property
    def recorder(self) -> RunRecorder:
        """A single job's recorder."""
        return self.recorders[0]

    @property
    def curve(self) -> LearningCurve:
        """A single job's learning curve."""
        return self.curves[0]


def trainer_settings(trainer_cfg: DictConfig) -> dict:
    """`trainer.*` as Trainer arguments, the counts checked, and a budget that trains nothing
    refused, before anything is built."""
    settings = OmegaConf.to_container(trainer_cfg, resolve=True)
    for key in ("max_epochs", "max_steps", "accumulate_grad_batches", "log_every_n_steps"):
        if settings.get(key) is not None:
            settings[key] = check_number(f"trainer.{key}", settings[key], integer=True)
    epochs, steps = settings.get("max_epochs"), settings.get("max_steps", -1)
    if steps is not None and steps == 0 or epochs == 0 and steps in (None, -1):
        raise ConfigError(f"trainer.max_epochs={epochs}, trainer.max_steps={steps}: this "
                          "budget trains nothing")
    if settings.get("accumulate_grad_batches", 1) < 1:
        raise ConfigError("trainer.accumulate_grad_batches must be >= 1, got "
                          f"{settings['accumulate_grad_batches']}")
    if settings.get("enable_progress_bar") is None:  # a bar only where someone watches it
        settings["enable_progress_bar"] = sys.stdout.isatty()
    return settings


def budget_steps(budget, flops_per_example: int, per_step: int) -> int | None:
    """Optimizer steps for a job's compute budget (`budget.flops` or `budget.examples`): the
    nearest whole number of steps, so the job's train_flops (examples) land within half a
    step's of the budget. None when no budget is set."""
    flops, examples = budget.get("flops"), budget.get("examples")
    if flops is not None and examples is not None:
        raise ConfigError("set budget.flops or budget.examples, not both")
    if flops is None and examples is None:
        return None
    if flops is not None:
        cost = training_flops(flops_per_example, per_step)
        key, value = "budget.flops", check_number("budget.flops", flops, low=0, low_open=True)
    else:
        cost = per_step
        key, value = "budget.examples", check_number("budget.examples", examples, low=0,
                                                     low_open=True)
    steps = round(value / cost)
    if steps < 1:
        raise ConfigError(f"{key}={value:g} is less than one optimizer step ({cost:g}: "
                          f"{per_step} examples); raise it or lower data.batch_size")
    return steps


def checkpoints(cfg: DictConfig, output_dir: Path) -> list[pl.Callback]:
    """Run management, not configuration: the job's own checkpoints, saved periodically
    (last.ckpt) and when training is interrupted (interrupted.ckpt: SIGTERM, Ctrl-C, an
    exception; Lightning deletes it again when a run ends normally), for re-runs to resume. By
    wall time by default: a save costs milliseconds, and small models run many short epochs."""
    check_number("checkpoint.every_minutes", cfg.checkpoint.every_minutes, low=0)
    every_n_epochs = cfg.checkpoint.get("every_n_epochs")
    every = ({"every_n_epochs": every_n_epochs} if every_n_epochs else
             {"train_time_interval": timedelta(minutes=cfg.checkpoint.every_minutes)})
    directory = output_dir / "checkpoints"
    return [ModelCheckpoint(dirpath=directory, filename="last", save_top_k=1,
                            enable_version_counter=False, **every),
            OnExceptionCheckpoint(dirpath=directory, filename="interrupted")]


def clock(settings: dict, callbacks: list[pl.Callback]) -> list[pl.Callback]:
    """Lightning's Timer, the job's training clock (measure.train_time), unless the config
    adds one itself. It also enforces `trainer.max_time`, as the Trainer would."""
    if any(isinstance(c, Timer) for c in callbacks):
        return []
    try:
        return [Timer(duration=settings.pop("max_time", None), interval="step")]
    except MisconfigurationException as e:
        raise ConfigError(f"trainer.max_time: {e}") from None


def set_matmul_precision(cfg: DictConfig) -> None:
    """`matmul_precision`, checked, for torch."""
    precision = cfg.get("matmul_precision", "highest")
    if precision not in MATMUL_PRECISIONS:
        raise ConfigError(f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, "
                          f"got {precision!r}")
    torch.set_float32_matmul_precision(precision)


def make_trainer(settings: dict, callbacks: list[pl.Callback], loggers: list,
                 **budget) -> pl.Trainer:
    """The Trainer from `trainer.*` (and a budget's step count). In a submitit job on SLURM,
    submitit owns requeueing (callbacks/preemption.py): the preemption callback is added and
    Lightning's own SLURM requeue is off; ranks still come from SLURM's environment."""
    plugins = []
    if (signum := submitit_signal()) is not None:
        if not any(isinstance(c, Preemption) for c in callbacks):
            callbacks.append(Preemption(signum))
        plugins.append(SLURMEnvironment(auto_requeue=False))
    try:
        return hydra.utils.instantiate(
            {**settings, **budget}, callbacks=callbacks, logger=loggers or False,
            **({"plugins": plugins} if plugins else {}), _convert_="all")
    except InstantiationException as e:  # the Trainer refusing its arguments: config
        raise ConfigError(f"trainer: {unwrap(e)}") from None


def first_batch(datamodule: pl.LightningDataModule):
    """The training loader and one real batch of it, read as Lightning will read them
    (prepare_data on one process per node, setup, train_dataloader), leaving the random state
    training starts from as it was. Any LightningDataModule whose loaders yield `(x, y)`
    tensors will do."""
    trainer = datamodule.trainer
    with rng_untouched(trainer.strategy.root_device if trainer else None):
        rank = (0 if trainer is None else trainer.local_rank if datamodule.prepare_data_per_node
                else trainer.global_rank)
        if rank == 0:
            datamodule.prepare_data()
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        batch = next(iter(loader), None)
    if batch is None:
        raise ConfigError("data: the training loader yields no batch")
    if not (isinstance(batch, list | tuple) and len(batch) == 2
            and all(isinstance(t, torch.Tensor) for t in batch)):
        kind = (f"a {type(batch).__name__} of {len(batch)}" if isinstance(batch, list | tuple)
                else f"a {type(batch).__name__}")
        raise ConfigError(f"data: the training loader must yield (x, y) batches of two "
                          f"tensors; it yields {kind}")
    return loader, batch


def build(cfg: DictConfig, identity: dict | None = None) -> Job:
    """Everything the job needs, built from its config, with every value checked before any
    training; it writes into `paths.output_dir`. `identity`: the job's identity, name and
    overrides (train/run.py's; by default from the config alone)."""
    job_start = time.monotonic()
    register_resolvers()  # ${run_name:} and ${job_name:}, for a config composed in Python too
    output_dir = Path(cfg.paths.output_dir)
    set_matmul_precision(cfg)
    pl.seed_everything(check_number("seed", cfg.seed, integer=True), workers=True, verbose=False)
    settings = trainer_settings(cfg.trainer)
    try:
        datamodule = hydra.utils.instantiate(cfg.data)
        recorder = RunRecorder(identity or job_identity(cfg),
                               OmegaConf.to_container(cfg, resolve=True),
                               check_every_n_steps=settings.get("log_every_n_steps") or 50,
                               job_start=job_start)
        curve = LearningCurve((cfg.get("curve") or {}).get("points", 0))
        user = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
        loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values()]
    except InstantiationException as e:
        raise unwrap(e) from None
    callbacks = [recorder, curve, *checkpoints(cfg, output_dir), *user, *clock(settings, user)]
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        callbacks.append(WandbSummary())
    trainer = make_trainer(settings, callbacks, loggers)

    # The data as Lightning will serve it (our datamodules split their global batch across
    # the trainer's ranks), then the model: sized, parametrized, and its FLOPs counted once,
    # on one real example, eagerly.
    datamodule.trainer = trainer
    loader, (x, _) = first_batch(datamodule)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    built = build_model(model_cfg, data_args(datamodule, x))
    flops = forward_flops_per_example(built.model, x)
    if cfg.model.get("compile"):
        built.model.compile()  # in place: the same module, parameters and checkpoint keys
    try:
        module = hydra.utils.instantiate(cfg.module, model=built.model, _convert_="all")
    except InstantiationException as e:
        raise unwrap(e) from None
    if trainer.limit_val_batches != 0 and not is_overridden("validation_step", module):
        raise ConfigError(f"module: {type(module).__name__} has no validation_step; "
                          "scalinglab measures a job by the val/loss it logs there")
    # A compute budget replaces max_epochs: the step count comes from the model's measured
    # FLOPs and the examples a step takes (the Trainer's world size is known by now), and the
    # LR schedule spans exactly it. The Trainer is made again with it; it has run nothing.
    per_step = examples_per_step(loader, trainer.world_size, trainer.accumulate_grad_batches)
    steps = budget_steps(cfg.get("budget") or {}, flops, per_step)
    if steps is not None:
        trainer = make_trainer(settings, callbacks, loggers, max_steps=steps, max_epochs=-1)
    recorder.examples_per_step = curve.examples_per_step = per_step
    recorder.size = size_of(built, flops, datamodule, loader)
    return Job(cfg, output_dir, datamodule, module, trainer, [recorder], [curve])


def size_of(built: Built, flops: int, datamodule: pl.LightningDataModule, loader) -> dict:
    """What the record says of the job's model and data (RunRecorder.size)."""
    return {"family": built.family, "depth": built.depth, "width": built.width,
            "params": built.params, "params_nonembedding": built.params_nonembedding,
            "param_bytes": built.param_bytes, "flops_per_example": flops,
            "tokens_per_example": getattr(datamodule, "tokens_per_example", None),
            "train_size": dataset_size(loader),
            "data": getattr(datamodule, "name", None) or type(datamodule).__name__,
            "data_info": data_info(datamodule)}


def data_info(datamodule: pl.LightningDataModule) -> dict:
    """What the datamodule says of its data for the record (`info`, a mapping: data=text gives
    its corpus' source, size and hash); {} when it says nothing of that kind."""
    info = getattr(datamodule, "info", None)
    return dict(info) if isinstance(info, Mapping) else {}


def measures_test(datamodule: pl.LightningDataModule, module: pl.LightningModule) -> bool:
    """Whether the job measures a test split, once, at its end: the datamodule has one apart
    from its validation data (it defines `test_dataloader` and does not say otherwise,
    `has_test_split = False`) and the module a `test_step` for it."""
    return (is_overridden("test_dataloader", datamodule)
            and getattr(datamodule, "has_test_split", True)
            and is_overridden("test_step", module))


def fit(job: Job) -> list[RunRecord]:
    """Train the job from its latest checkpoint, if any; measure the final weights when the
    last step was not validated (and the test split, once, when there is one); return the
    run record (a pack's: each member's; a diverged member is measured as it stopped)."""
    trainer, module, data = job.trainer, job.module, job.datamodule
    if job.cfg.force and trainer.is_global_zero:  # start over: its checkpoints would be resumed
        shutil.rmtree(job.output_dir / "checkpoints", ignore_errors=True)
    # "last": the newer of last.ckpt and interrupted.ckpt, as Lightning picks it
    trainer.fit(module, datamodule=data, ckpt_path="last")
    running = [r for r in job.recorders if r.diverged is None]
    if running:
        validated = all(r.validated_at == trainer.global_step for r in running)
        if trainer.global_step and not validated and trainer.limit_val_batches != 0:
            trainer.validate(module, datamodule=data, verbose=False)
        if measures_test(data, module):
            trainer.test(module, datamodule=data, verbose=False)
    return [r.record(trainer) for r in job.recorders]
