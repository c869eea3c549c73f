"""Puts a job's size and final metrics into its W&B run's config and summary."""

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger

from scalinglab.callbacks.run_record import RunRecorder
from scalinglab.tracking import CONFIG_KEYS, SUMMARY_KEYS


def _wandb_run(trainer: pl.Trainer):
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            return logger.experiment
    return None


class WandbSummary(pl.Callback):
    """Config: the size attributes (filter and group by them). Summary: `SUMMARY_KEYS`.
    Step metrics are plotted against examples seen; `best/val_loss` is the minimum."""

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run = _wandb_run(trainer)
        if run is None:
            return
        run.config.update({"scalinglab": self.recorder.config, "study": run.group,
                           "job_type": run.job_type}, allow_val_change=True)
        size = self.recorder.record(trainer)
        run.config.update({k: size.get(k) for k in CONFIG_KEYS}, allow_val_change=True)
        run.define_metric("trainer/examples_seen")
        for prefix in ("train/*", "val/*", "train_eval/*"):
            run.define_metric(prefix, step_metric="trainer/examples_seen")
        run.define_metric("val/loss", summary="min")

    def _summarize(self, trainer: pl.Trainer) -> None:
        run = _wandb_run(trainer)
        if run is None:
            return
        record = self.recorder.record(trainer)
        run.summary.update({key: record.get(col) for col, key in SUMMARY_KEYS.items()})
        run.config.update({k: record.get(k) for k in CONFIG_KEYS}, allow_val_change=True)

    def on_train_end(self, trainer, pl_module) -> None:
        self._summarize(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._summarize(trainer)
