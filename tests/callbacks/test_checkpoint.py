"""Periodic checkpoints: by wall time between training calls, or every n epochs."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from scalinglab.train import latest_checkpoint, train
from tests.conftest import fit

STEPS_PER_EPOCH = 4000 // 128


def saved_step(out: str) -> int:
    ckpt = torch.load(Path(out) / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    return ckpt["global_step"]


def test_time_based_saves_happen_between_calls(make_cfg):
    # every_minutes=0: due after every call, so the last save holds the run's final step
    cfg = make_cfg("trainer.max_epochs=2", "checkpoint.every_minutes=0", "module.call_ms=5")
    record = train(cfg, cfg.paths.output_dir)
    assert saved_step(cfg.paths.output_dir) == record["steps"] == 2 * STEPS_PER_EPOCH


def test_no_save_before_the_interval(make_cfg):
    cfg = make_cfg("trainer.max_epochs=2")  # every 10 minutes by default
    train(cfg, cfg.paths.output_dir)
    assert latest_checkpoint(cfg.paths.output_dir) is None


def test_every_n_epochs_saves_at_epoch_ends_and_a_rerun_resumes(make_cfg, caplog):
    cfg = make_cfg("trainer.max_epochs=3", "checkpoint.every_n_epochs=2")
    train(cfg, cfg.paths.output_dir)
    assert saved_step(cfg.paths.output_dir) == 2 * STEPS_PER_EPOCH  # after epoch 2, not 3
    longer = make_cfg("trainer.max_epochs=4", "checkpoint.every_n_epochs=2")
    with caplog.at_level("INFO", logger="scalinglab"):
        record = train(longer, cfg.paths.output_dir)
    assert "resuming from" in caplog.text and "last.ckpt" in caplog.text
    assert record["steps"] == 4 * STEPS_PER_EPOCH and record["status"] == "completed"
    assert saved_step(cfg.paths.output_dir) == 4 * STEPS_PER_EPOCH


class Killed(RuntimeError):
    pass


class KillAfterEpoch(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Killed


def test_a_time_based_save_at_an_epoch_end_resumes_exactly(make_cfg, tmp_path):
    # One call an epoch: the save falls due in the epoch's last call, and waits for its end
    # (a checkpoint taken inside that call would resume one epoch short).
    args = ["trainer.max_epochs=4", "module.call_ms=60000", "checkpoint.every_minutes=0"]
    uninterrupted = make_cfg(*args)
    uninterrupted.paths.output_dir = str(tmp_path / "full")
    _, _, full = fit(uninterrupted)
    cfg = make_cfg(*args)
    with pytest.raises(Killed):
        fit(cfg, KillAfterEpoch(1))
    (Path(cfg.paths.output_dir) / "checkpoints" / "interrupted.ckpt").unlink()  # as if SIGKILLed
    # Lightning runs checkpoint callbacks' epoch-end hooks last: the newest save is epoch 0's
    assert saved_step(cfg.paths.output_dir) == STEPS_PER_EPOCH
    _, _, resumed = fit(cfg)
    assert resumed["steps"] == full["steps"] == 4 * STEPS_PER_EPOCH
    assert resumed["val_loss"] == full["val_loss"]
