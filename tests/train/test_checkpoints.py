"""The job's own checkpoints (`checkpoint.every_minutes` / `every_n_epochs`, Lightning's
ModelCheckpoint) and exact resumption from them, at an epoch's end and mid-epoch."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from scalinglab.callbacks.curve import log_steps
from tests.helpers import STEPS_PER_EPOCH, curve, fit, run


def saved_step(out: str) -> int:
    ckpt = torch.load(Path(out) / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    return ckpt["global_step"]


class Killed(RuntimeError):
    pass


class KillAt(pl.Callback):
    """Raises once training reaches `step` (after the job's own checkpoint callbacks ran)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Killed


def test_time_based_saves_hold_the_final_step(make_cfg):
    # every_minutes=0: due after every step, so the last save holds the run's final step
    cfg = make_cfg("trainer.max_epochs=2", "checkpoint.every_minutes=0")
    record = run(cfg)
    assert saved_step(cfg.paths.output_dir) == record["steps"] == 2 * STEPS_PER_EPOCH


def test_no_save_before_the_interval(make_cfg):
    cfg = make_cfg("trainer.max_epochs=2")  # every 10 minutes by default
    run(cfg)
    assert not list((Path(cfg.paths.output_dir) / "checkpoints").glob("*.ckpt"))


def test_every_n_epochs_saves_at_epoch_ends_and_a_rerun_resumes(make_cfg, caplog):
    cfg = make_cfg("trainer.max_epochs=3", "checkpoint.every_n_epochs=2")
    run(cfg)
    assert saved_step(cfg.paths.output_dir) == 2 * STEPS_PER_EPOCH  # after epoch 2, not 3
    longer = make_cfg("trainer.max_epochs=4", "checkpoint.every_n_epochs=2")
    with caplog.at_level("INFO", logger="scalinglab"):
        record = run(longer)
    assert "resuming from" in caplog.text and "last.ckpt at step 16" in caplog.text
    assert record["steps"] == 4 * STEPS_PER_EPOCH and record["status"] == "completed"
    assert saved_step(cfg.paths.output_dir) == 4 * STEPS_PER_EPOCH


# A save at an epoch's last step, and one mid-epoch; each killed job resumes to the same
# final metrics as an uninterrupted one (same batches, same dropout masks).
@pytest.mark.parametrize("kill_at", [STEPS_PER_EPOCH, STEPS_PER_EPOCH + 7])
def test_a_killed_job_resumes_exactly_from_its_last_save(make_cfg, tmp_path, kill_at):
    args = ["trainer.max_epochs=3", "model.dropout=0.1", "checkpoint.every_minutes=0"]
    uninterrupted = make_cfg(*args)
    uninterrupted.paths.output_dir = str(tmp_path / "full")
    full_job, full = fit(uninterrupted)
    full_curve = curve(full_job, full)
    cfg = make_cfg(*args)
    with pytest.raises(Killed):
        fit(cfg, KillAt(kill_at))
    (Path(cfg.paths.output_dir) / "checkpoints" / "interrupted.ckpt").unlink()  # as if SIGKILLed
    assert saved_step(cfg.paths.output_dir) == kill_at
    resumed_job, resumed = fit(cfg)
    assert resumed["steps"] == full["steps"] == 3 * STEPS_PER_EPOCH
    assert resumed["epochs"] == full["epochs"] == 3
    for key in ("val_loss", "train_loss", "best_val_loss", "val_acc"):
        assert resumed[key] == full[key], key
    # The learning curve travels in the checkpoint: its points before the kill come back.
    curves = [[{k: v for k, v in row.items() if k != "time_s"} for row in rows] for rows in
              (full_curve, curve(resumed_job, resumed))]
    assert curves[0] == curves[1]
    assert len(curves[0]) == len(log_steps(3 * STEPS_PER_EPOCH, 8)) + 1  # and the end
