"""The recipe: config -> data -> model -> LightningModule -> callbacks, loggers -> Trainer ->
fit -> the final weights measured. What happens around it (skip, resume, failure, preemption,
exit codes) is train/run.py's."""

import logging
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, check_number
from scalinglab.identity import identity, job_name

log = logging.getLogger("scalinglab")


def _unwrap(error: BaseException) -> BaseException:
    """Hydra wraps errors raised while instantiating; report the original error."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def job_identity(cfg: DictConfig) -> dict:
    """The job's identity hash and readable name, as they go into its record."""
    return {"identity": identity(cfg), "job": job_name(cfg)}


def check_budget(trainer_cfg: dict) -> None:
    """A budget that trains nothing is a config error, before anything is built."""
    epochs, steps = trainer_cfg.get("max_epochs"), trainer_cfg.get("max_steps", -1)
    if steps is not None and steps == 0 or epochs == 0 and steps in (None, -1):
        raise ConfigError(f"trainer.max_epochs={epochs}, trainer.max_steps={steps}: this "
                          "budget trains nothing")
    if trainer_cfg.get("accumulate_grad_batches", 1) < 1:
        raise ConfigError("trainer.accumulate_grad_batches must be >= 1, got "
                          f"{trainer_cfg['accumulate_grad_batches']}")


def budget_steps(budget, model, input_shape: tuple[int, ...],
                 examples_per_step: int) -> int | None:
    """Optimizer steps for a job's compute budget (`budget.flops` or `budget.examples`): the
    nearest whole number of steps, so the job's train_flops (examples) land within half a
    step's of the budget. None when no budget is set. A FLOP budget counts the model's
    forward FLOPs on an input of the data's shape (the recorder counts them again for the
    record, on a real example, at fit start)."""
    import torch

    from scalinglab.train.measure import forward_flops_per_example

    flops, examples = budget.get("flops"), budget.get("examples")
    if flops is not None and examples is not None:
        raise ConfigError("set budget.flops or budget.examples, not both")
    if flops is None and examples is None:
        return None
    if flops is not None:
        fpe = forward_flops_per_example(model, torch.zeros(1, *input_shape))
        per_step = 3 * fpe * examples_per_step  # forward + backward ~ 3 forward
        key, value = "budget.flops", check_number("budget.flops", flops, low=0, low_open=True)
    else:
        per_step = examples_per_step
        key, value = "budget.examples", check_number("budget.examples", examples, low=0,
                                                     low_open=True)
    steps = round(value / per_step)
    if steps < 1:
        raise ConfigError(f"{key}={value:g} is less than one optimizer step ({per_step:g}: "
                          f"{examples_per_step} examples); raise it or lower data.batch_size")
    return steps


def build(cfg: DictConfig, output_dir: str, job: dict | None = None,
          job_start: float | None = None):
    """Instantiate everything a run needs, validating the config before any training."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint

    from scalinglab.callbacks import Preemption, WandbSummary
    from scalinglab.callbacks.preemption import submitit_signal
    from scalinglab.train.curve import LearningCurve
    from scalinglab.train.measure import RunRecorder

    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in ("max_epochs", "max_steps", "accumulate_grad_batches", "log_every_n_steps"):
        if trainer_cfg.get(key) is not None:
            trainer_cfg[key] = check_number(f"trainer.{key}", trainer_cfg[key], integer=True)
    check_budget(trainer_cfg)
    check_number("checkpoint.every_minutes", cfg.checkpoint.every_minutes, low=0)
    if trainer_cfg.get("enable_progress_bar") is None:  # a bar only where someone watches it
        trainer_cfg["enable_progress_bar"] = sys.stdout.isatty()
    try:
        datamodule = hydra.utils.instantiate(cfg.data)
        model = hydra.utils.instantiate(cfg.model, input_shape=datamodule.input_shape,
                                        num_classes=datamodule.num_classes)
        module = hydra.utils.instantiate(cfg.module, model=model,
                                         num_classes=datamodule.num_classes)
        # A compute budget replaces max_epochs: the step count comes from the model's measured
        # FLOPs, and the LR schedule spans exactly it.
        steps = budget_steps(cfg.get("budget") or {}, model, datamodule.input_shape,
                             datamodule.batch_size * trainer_cfg.get("accumulate_grad_batches", 1))
        if steps is not None:
            trainer_cfg.update(max_steps=steps, max_epochs=-1)
        recorder = RunRecorder(seed=cfg.seed, job=job or job_identity(cfg),
                               config=OmegaConf.to_container(cfg, resolve=True),
                               check_every_n_steps=cfg.trainer.log_every_n_steps,
                               job_start=job_start)
        curve = LearningCurve(recorder, (cfg.get("curve") or {}).get("points", 0))
        # Run management, not configuration: the job's own checkpoints, saved periodically
        # (last.ckpt) and when training is interrupted (interrupted.ckpt: SIGTERM, Ctrl-C, an
        # exception; Lightning deletes it again when a run ends normally), for re-runs to resume.
        # By wall time by default: a save costs milliseconds, and small models run many short
        # epochs.
        every_n_epochs = cfg.checkpoint.get("every_n_epochs")
        every = ({"every_n_epochs": every_n_epochs} if every_n_epochs else
                 {"train_time_interval": timedelta(minutes=cfg.checkpoint.every_minutes)})
        ckpt_dir = Path(output_dir) / "checkpoints"
        callbacks = [recorder, curve,
                     ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1,
                                     enable_version_counter=False, **every),
                     OnExceptionCheckpoint(dirpath=ckpt_dir, filename="interrupted"),
                     *(hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values())]
        loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values()]
        if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
            callbacks.append(WandbSummary(recorder))
        extra = {}
        if (signum := submitit_signal()) is not None:
            # A submitit job on SLURM: submitit owns requeueing (callbacks/preemption.py), so
            # Lightning's own SLURM requeue is off. Ranks still come from SLURM's environment.
            from lightning.pytorch.plugins.environments import SLURMEnvironment

            callbacks.append(Preemption(signum))
            extra["plugins"] = [SLURMEnvironment(auto_requeue=False)]
        try:
            trainer: pl.Trainer = hydra.utils.instantiate(trainer_cfg, callbacks=callbacks,
                                                          logger=loggers or False, **extra,
                                                          _convert_="all")
        except InstantiationException as e:  # the Trainer refusing its arguments: config
            raise ConfigError(f"trainer: {_unwrap(e)}") from None
    except InstantiationException as e:
        raise _unwrap(e) from None
    if datamodule.batch_size % trainer.world_size:  # known now, before any data is read
        raise ConfigError(f"data.batch_size={datamodule.batch_size} is global and must divide "
                          f"evenly across {trainer.world_size} processes")
    return datamodule, module, trainer, recorder, curve


def latest_checkpoint(output_dir: str) -> Path | None:
    """The newer of the job's periodic and interrupt checkpoints, if any."""
    found = [p for p in (Path(output_dir) / "checkpoints").glob("*.ckpt")
             if p.stem in ("last", "interrupted")]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def train(cfg: DictConfig, output_dir: str, job: dict | None = None, built: dict | None = None,
          callbacks: tuple = ()):
    """Train one configuration, resuming its latest checkpoint, and measure its final weights.
    Returns the run record. `built` (optional) receives the trainer, recorder and learning
    curve as soon as they exist, for whoever has to report a failure (and write the curve);
    `callbacks` are added to the Trainer's."""
    job_start = time.perf_counter()
    import lightning.pytorch as pl
    import torch

    precision = cfg.get("matmul_precision", "highest")
    if precision not in ("highest", "high", "medium"):
        raise ConfigError(f"matmul_precision must be highest, high or medium, got {precision!r}")
    torch.set_float32_matmul_precision(precision)
    pl.seed_everything(check_number("seed", cfg.seed, integer=True), workers=True, verbose=False)
    datamodule, module, trainer, recorder, curve = build(cfg, output_dir, job, job_start)
    trainer.callbacks.extend(callbacks)
    if built is not None:
        built.update(trainer=trainer, recorder=recorder, curve=curve)
    if cfg.force and trainer.is_global_zero:  # start over: its checkpoints would be resumed
        shutil.rmtree(Path(output_dir) / "checkpoints", ignore_errors=True)
    resume = None if cfg.force else latest_checkpoint(output_dir)
    if resume:
        log.info("resuming from %s", resume)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    if recorder.needs_final_validation(trainer):  # every budget ends measured
        trainer.validate(module, datamodule=datamodule, verbose=False)
    if datamodule.x_test is not None and recorder.diverged is None:  # data.val_from_train
        trainer.test(module, datamodule=datamodule, verbose=False)
    return recorder.record(trainer)
