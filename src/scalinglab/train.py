"""`scalinglab-train`: train one model size and record it; `-m` sweeps a grid of sizes.

The recipe: seed -> data -> model -> LightningModule -> callbacks, loggers -> trainer -> fit.
The RunRecorder callback measures the job and writes `run.json` into its output directory.
A job whose run.json already says completed with the same identity is skipped; an unfinished
one resumes from its `checkpoints/last.ckpt`.
"""

import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, records
from scalinglab.identity import identity, job_name, register_resolver
from scalinglab.slurm import Preempted
from scalinglab.slurm import register_resolver as register_slurm_resolver
from scalinglab.tracking import finish_run

log = logging.getLogger("scalinglab")
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
register_resolver()
register_slurm_resolver()


def _unwrap(error: BaseException) -> BaseException:
    """Hydra wraps errors raised while instantiating; report the original error."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def build(cfg: DictConfig, output_dir: str, job: dict | None = None,
          job_start: float | None = None):
    """Instantiate everything a run needs, validating the config before any training."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import OnExceptionCheckpoint

    from scalinglab.callbacks import (
        PeriodicCheckpoint,
        Preemption,
        RunRecorder,
        WandbSummary,
        submitit_signal,
    )

    try:
        datamodule = hydra.utils.instantiate(cfg.data)
        model = hydra.utils.instantiate(cfg.model, input_shape=datamodule.input_shape,
                                        num_classes=datamodule.num_classes)
        # The module runs its own optimizer steps (module.py), so it applies Lightning's
        # clipping settings itself; the Trainer refuses them outside its automatic loop.
        trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
        clipping = {key: trainer_cfg.pop(key) for key in
                    ("gradient_clip_val", "gradient_clip_algorithm") if key in trainer_cfg}
        if trainer_cfg.get("accumulate_grad_batches", 1) != 1:
            raise ConfigError("trainer.accumulate_grad_batches is not supported: data.batch_size "
                              "is the global batch of every optimizer step; raise it instead")
        module = hydra.utils.instantiate(cfg.module, model=model,
                                         num_classes=datamodule.num_classes, **clipping)
        recorder = RunRecorder(output_dir, seed=cfg.seed, job=job or job_identity(cfg),
                               config=OmegaConf.to_container(cfg, resolve=True),
                               check_every_n_steps=cfg.trainer.log_every_n_steps,
                               job_start=job_start)
        # Run management, not configuration: the job's own checkpoints, saved periodically
        # (last.ckpt) and when training is interrupted (interrupted.ckpt: SIGTERM, Ctrl-C, an
        # exception; Lightning deletes it again when a run ends normally), for re-runs to resume.
        # By wall time by default: a save costs milliseconds, and small models run many short
        # epochs.
        ckpt_dir = Path(output_dir) / "checkpoints"
        checkpoints = [PeriodicCheckpoint(ckpt_dir, cfg.checkpoint.every_minutes,
                                          cfg.checkpoint.get("every_n_epochs")),
                       OnExceptionCheckpoint(dirpath=ckpt_dir, filename="interrupted")]
        loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values()]
        callbacks = [recorder, *checkpoints,
                     *(hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values())]
        if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
            callbacks.insert(1, WandbSummary(recorder))
        extra = {}
        if (signum := submitit_signal()) is not None:
            # A submitit job on SLURM: submitit owns requeueing (callbacks/preemption.py), so
            # Lightning's own SLURM requeue is off. Ranks still come from SLURM's environment.
            from lightning.pytorch.plugins.environments import SLURMEnvironment

            callbacks.append(Preemption(signum))
            extra["plugins"] = [SLURMEnvironment(auto_requeue=False)]
        trainer: pl.Trainer = hydra.utils.instantiate(trainer_cfg, callbacks=callbacks,
                                                      logger=loggers or False, **extra)
    except InstantiationException as e:
        raise _unwrap(e) from None
    return datamodule, module, trainer, recorder


def _quiet_lightning() -> None:
    """One line per message: Hydra's handlers (console + train.log) print Lightning's logs, so
    drop Lightning's own console handler; and silence warnings that do not apply to our loop."""
    logging.getLogger("lightning.pytorch").handlers.clear()
    logging.getLogger("lightning.pytorch").propagate = True
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    # We log on our own cadence (module.log_every_n_steps), so short epochs are fine.
    warnings.filterwarnings("ignore", message="The number of training batches .* logging interval")
    # We choose the checkpoint to resume ourselves (latest_checkpoint), not Lightning's "last".
    warnings.filterwarnings("ignore", message=".*fit\\(ckpt_path=None\\)` was called without")
    warnings.filterwarnings("ignore", message='.*fit\\(ckpt_path="last"\\) is set, but there')
    warnings.filterwarnings("ignore", message="You have overridden `transfer_batch_to_device`")
    # Outside SLURM we do not want srun (hydra/launcher=slurm is how jobs get there).
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system")
    # DeviceBatches derives its position from the global step, so mid-epoch resumes are exact.
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
    # Our training_step takes dataloader_iter to run many steps a call; no hook reads batch_idx.
    warnings.filterwarnings("ignore", message="You are using the `dataloader_iter` step flavor")
    warnings.filterwarnings("ignore", message="Found `dataloader_iter` argument in the")


def latest_checkpoint(output_dir: str) -> Path | None:
    """The newer of the job's periodic and interrupt checkpoints, if any."""
    found = [p for p in (Path(output_dir) / "checkpoints").glob("*.ckpt")
             if p.stem in ("last", "interrupted")]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def train(cfg: DictConfig, output_dir: str, job: dict | None = None) -> dict:
    """Train one configuration (resuming its checkpoint, if any) and return its run record."""
    job_start = time.perf_counter()
    import lightning.pytorch as pl
    import torch

    _quiet_lightning()
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module, trainer, recorder = build(cfg, output_dir, job, job_start)
    if cfg.force and trainer.is_global_zero:  # start over: Lightning would resume last.ckpt
        shutil.rmtree(Path(output_dir) / "checkpoints", ignore_errors=True)
    resume = None if cfg.force else latest_checkpoint(output_dir)
    if resume:
        log.info("resuming from %s", resume)
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume))
    else:
        trainer.fit(module, datamodule=datamodule)
    record = recorder.record(trainer)
    if trainer.is_global_zero:
        log.info("%s: %s params=%s val_loss=%s val_acc=%s time=%.1fs", record["status"],
                 record["family"], record["params"], record["val_loss"], record["val_acc"],
                 record["time_s"] or 0.0)
    return record


def interrupted(error: BaseException) -> bool:
    """Lightning raises its SIGTERMException (a SystemExit) when the job gets SIGTERM."""
    return type(error).__name__ == "SIGTERMException"


def job_identity(cfg: DictConfig) -> dict:
    """The job's identity hash and readable name, as they go into its record."""
    return {"identity": identity(cfg), "job": job_name(cfg)}


def completed_before(cfg: DictConfig, output_dir: str, job: dict) -> dict | None:
    """The job's record if it already completed with this identity (and force is off)."""
    path = Path(output_dir) / records.RECORD_NAME
    if cfg.force or not path.exists():
        return None
    previous = records.read_record(path)
    same = previous.get("identity") == job["identity"]
    return previous if previous.get("status") == "completed" and same else None


def _record_failure(cfg: DictConfig, output_dir: str, job: dict, error: BaseException,
                    overwrite: bool = False) -> None:
    """A job that failed before its recorder could write still leaves a record saying why;
    `overwrite` keeps the recorder's record but replaces its reason."""
    path = Path(output_dir) / records.RECORD_NAME
    reason = f"{type(error).__name__}: {error}"
    previous = records.read_record(path) if path.exists() else {}
    if previous.get("identity") == job["identity"]:
        if overwrite:
            records.write_record(output_dir, {**previous, "status": "failed", "reason": reason})
        return
    records.write_record(output_dir, {
        "status": "failed", "reason": reason,
        "family": cfg.model.get("family"), "depth": cfg.model.get("depth"),
        "width": cfg.model.get("width"), "seed": cfg.get("seed"),
        **job,
        "config": OmegaConf.to_container(cfg, resolve=False)})


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> dict | None:
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    n_jobs = hydra_cfg.launcher.get("n_jobs")
    if multirun and "Joblib" in hydra_cfg.launcher.get("_target_", "") and n_jobs:
        from scalinglab.parallel import configure_worker

        share = configure_worker(hydra_cfg.sweep.dir, n_jobs)
        log.info("worker slot %(slot)d: %(threads)d threads, GPUs %(gpus)s", share)
    job = job_identity(cfg)
    previous = completed_before(cfg, output_dir, job)
    if previous is not None:
        log.info("skipping %s: already completed with the same config (force=true retrains)",
                 job["job"])
        return previous
    try:
        return train(cfg, output_dir, job)
    except Preempted as preempted:
        log.warning("%s: checkpoint saved in %s/checkpoints; submitit requeues the job",
                    preempted, output_dir)
        finish_run()  # now: SLURM stops every process of the job (W&B's too) once requeued
        try:
            preempted.requeue()
        except Exception as refused:  # submitit's UncompletedJobError: requeued too often
            _record_failure(cfg, output_dir, job, refused, overwrite=True)
            log.error("job %s not requeued: %s", job["job"], refused)
            return None
    except SystemExit as stop:
        if not interrupted(stop):
            raise
        log.warning("interrupted by SIGTERM: checkpoint saved in %s/checkpoints; "
                    "run the same command again to resume", output_dir)
        sys.exit(143)  # 128 + SIGTERM, as a shell reports a terminated process
    except Exception as error:
        _record_failure(cfg, output_dir, job, error)
        if isinstance(error, ConfigError):
            log.error("config error: %s", error)
            if not multirun:
                sys.exit(2)
        elif not multirun:
            raise
        else:
            log.exception("job %s failed", hydra_cfg.job.num)
        # In a multirun, a failed job is recorded and the sweep goes on; the sweep summary
        # reports it at the end and sets the exit code.
        return None
    finally:
        finish_run()  # every job its own W&B run, even when it fails
        if "scalinglab.ddp" in sys.modules:  # only when a DDP strategy was built
            sys.modules["scalinglab.ddp"].end_job()


if __name__ == "__main__":
    main()
