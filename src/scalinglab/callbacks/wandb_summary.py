"""Puts a job's size into its W&B run's config as training starts; the final record goes into
the summary when the job ends (records/wandb.py, `summarize_run`)."""

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger

from scalinglab.records.wandb import CONFIG_KEYS
from scalinglab.train.measure import RunRecorder


class WandbSummary(pl.Callback):
    """Config: the resolved config and the size attributes (filter and group by them). Step
    metrics are plotted against examples seen; `val/loss`'s summary is its minimum."""

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        runs = [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not runs or not trainer.is_global_zero:
            return
        run = runs[0]
        run.config.update({"scalinglab": self.recorder.config, "study": run.group,
                           "job_type": run.job_type}, allow_val_change=True)
        size = self.recorder.record(trainer).to_dict()
        run.config.update({k: size.get(k) for k in CONFIG_KEYS}, allow_val_change=True)
        run.define_metric("trainer/examples_seen")
        for prefix in ("train/*", "val/*", "train_eval/*", "curve/*"):
            run.define_metric(prefix, step_metric="trainer/examples_seen")
        run.define_metric("val/loss", summary="min")
