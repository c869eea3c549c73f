"""The W&B run's layout as training starts: its study and job type in the config (the run
recorder gives every logger the job's config and size), and every step metric plotted against
examples seen. The final record goes into the summary when the job ends (train/wandb.py)."""

import lightning.pytorch as pl
from lightning.pytorch.loggers import WandbLogger


def lay_out(run) -> None:
    """A job's W&B run: its study and job type in its config, every step metric plotted
    against examples seen, and `val/loss`'s summary its minimum."""
    run.config.update({"study": run.group, "job_type": run.job_type}, allow_val_change=True)
    run.define_metric("trainer/examples_seen")
    for prefix in ("train/*", "val/*", "train_eval/*", "curve/*"):
        run.define_metric(prefix, step_metric="trainer/examples_seen")
    run.define_metric("val/loss", summary="min")


class WandbSummary(pl.Callback):
    """Lays out the job's W&B run (`lay_out`) as fitting starts, on rank 0."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        runs = [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if runs and trainer.is_global_zero:
            lay_out(runs[0])
