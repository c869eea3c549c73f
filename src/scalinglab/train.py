"""`scalinglab-train`: train one model size and record it; `-m` sweeps a grid of sizes.

The recipe: seed -> data -> model -> LightningModule -> callbacks, loggers -> trainer -> fit.
The RunRecorder callback measures the job and writes `run.json` into its output directory.
"""

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, records

log = logging.getLogger("scalinglab")
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _unwrap(error: BaseException) -> BaseException:
    """Hydra wraps errors raised while instantiating; report the original error."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def build(cfg: DictConfig, output_dir: str):
    """Instantiate everything a run needs, validating the config before any training."""
    import lightning.pytorch as pl

    from scalinglab.callbacks import RunRecorder

    try:
        datamodule = hydra.utils.instantiate(cfg.data)
        model = hydra.utils.instantiate(cfg.model, input_shape=datamodule.input_shape,
                                        num_classes=datamodule.num_classes)
        module = hydra.utils.instantiate(cfg.module, model=model,
                                         num_classes=datamodule.num_classes)
        recorder = RunRecorder(output_dir, seed=cfg.seed,
                               config=OmegaConf.to_container(cfg, resolve=True),
                               check_every_n_steps=cfg.trainer.log_every_n_steps)
        callbacks = [recorder, *(hydra.utils.instantiate(c)
                                 for c in (cfg.get("callbacks") or {}).values())]
        loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values()]
        trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks,
                                                      logger=loggers or False)
    except InstantiationException as e:
        raise _unwrap(e) from None
    return datamodule, module, trainer, recorder


def _quiet_lightning() -> None:
    """One line per message: Hydra's handlers (console + train.log) print Lightning's logs, so
    drop Lightning's own console handler, and two warnings that are noise for our loop."""
    logging.getLogger("lightning.pytorch").handlers.clear()
    logging.getLogger("lightning.pytorch").propagate = True
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    # We log on our own cadence (module.log_every_n_steps), so short epochs are fine.
    warnings.filterwarnings("ignore", message="The number of training batches .* logging interval")


def train(cfg: DictConfig, output_dir: str) -> dict:
    """Train one configuration and return its run record."""
    import lightning.pytorch as pl

    _quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module, trainer, recorder = build(cfg, output_dir)
    trainer.fit(module, datamodule=datamodule)
    record = recorder.record(trainer)
    log.info("%s: %s params=%s val_loss=%s val_acc=%s time=%.1fs", record["status"],
             record["family"], record["params"], record["val_loss"], record["val_acc"],
             record["time_s"] or 0.0)
    return record


def _record_failure(cfg: DictConfig, output_dir: str, error: BaseException) -> None:
    """A job that failed before its recorder could write still leaves a record saying why."""
    if (Path(output_dir) / records.RECORD_NAME).exists():
        return
    records.write_record(output_dir, {
        "status": "failed", "reason": f"{type(error).__name__}: {error}",
        "family": cfg.model.get("family"), "depth": cfg.model.get("depth"),
        "width": cfg.model.get("width"), "seed": cfg.get("seed"),
        "config": OmegaConf.to_container(cfg, resolve=False)})


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> dict | None:
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        return train(cfg, output_dir)
    except Exception as error:
        _record_failure(cfg, output_dir, error)
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


if __name__ == "__main__":
    main()
