"""The W&B run's layout as training starts: its study and job type in the config (the run
recorder gives every logger the job's config and size), and every step metric plotted against
examples seen. The final record goes into the summary when the job ends (train/wandb.py)."""

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger


class WandbSummary(pl.Callback):
    """Step metrics against `trainer/examples_seen`; `val/loss`'s summary is its minimum."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        runs = [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not runs or not trainer.is_global_zero:
            return
        run = runs[0]
        run.config.update({"study": run.group, "job_type": run.job_type},
                          allow_val_change=True)
        run.define_metric("trainer/examples_seen")
        for prefix in ("train/*", "val/*", "train_eval/*", "curve/*"):
            run.define_metric(prefix, step_metric="trainer/examples_seen")
        run.define_metric("val/loss", summary="min")
