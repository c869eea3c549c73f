"""Periodic checkpoints: `checkpoints/last.ckpt`, every n minutes of training or every n epochs.

Lightning's ModelCheckpoint ignores `train_time_interval` when the module steps its optimizer
itself, as ours does (module.py), so the periodic save is this small callback. Saves happen
between training calls, where the model, optimizer, schedule and step count agree, and replace
`last.ckpt` atomically (Lightning writes to a temporary file and moves it into place).
"""

import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint


def ends_epoch(trainer: pl.Trainer) -> bool:
    """In `on_train_batch_end` of an epoch's last training call. A checkpoint taken there
    resumes one epoch short: Lightning's restart logic counts calls, and a call here is many
    steps. So saves and preemption wait for `on_train_epoch_end`, Lightning's own save point."""
    return trainer.fit_loop.epoch_loop.batch_progress.is_last_batch


class PeriodicCheckpoint(Checkpoint):
    def __init__(self, dirpath: str | Path, every_minutes: float = 10.0,
                 every_n_epochs: int | None = None) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_epochs = every_n_epochs
        self.interval_s = None if every_n_epochs else 60.0 * every_minutes
        self.last_save = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_save = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self.interval_s is not None and not ends_epoch(trainer) and self.due(trainer):
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs:
            if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
                self.save(trainer)
        elif self.due(trainer):
            self.save(trainer)

    def due(self, trainer: pl.Trainer) -> bool:
        due = time.monotonic() - self.last_save >= self.interval_s
        if trainer.world_size > 1:  # rank 0's clock decides, so that every rank saves
            due = trainer.strategy.broadcast(due)
        return due

    def save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path)  # every rank calls it; rank 0 writes
        self.last_save = time.monotonic()
