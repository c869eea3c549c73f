"""Preemption in-process: the real callback and signal, a checkpoint, an exact resume."""

import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from scalinglab.callbacks.preemption import Preempted, Preemption
from tests.helpers import STEPS_PER_EPOCH, fit


class SignalAt(pl.Callback):
    """Sends this process the requeue signal once training reaches `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGUSR2)
            self.step = float("inf")


# The signal at an epoch's last step, and mid-epoch.
@pytest.mark.parametrize("at", [STEPS_PER_EPOCH, STEPS_PER_EPOCH + 5])
def test_preempted_run_resumes_exactly(make_cfg, tmp_path, at):
    args = ["trainer.max_epochs=4", "model.dropout=0.1"]
    uninterrupted = make_cfg(*args)
    uninterrupted.paths.output_dir = str(tmp_path / "full")
    _, full = fit(uninterrupted)
    cfg = make_cfg(*args)
    handler = signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # restored by the callback
    try:
        with pytest.raises(Preempted):
            # SignalAt first: the signal is there when Preemption looks at the step's end
            fit(cfg, SignalAt(at), Preemption(signal.SIGUSR2))
    finally:
        signal.signal(signal.SIGUSR2, handler)
    saved = sorted(p.name for p in (Path(cfg.paths.output_dir) / "checkpoints").glob("*.ckpt"))
    assert saved == ["interrupted.ckpt"]  # at the step boundary, before any periodic save
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "interrupted.ckpt",
                      weights_only=False)
    assert ckpt["global_step"] == at
    _, resumed = fit(cfg)
    assert resumed["steps"] == full["steps"] == 4 * STEPS_PER_EPOCH
    for key in ("val_loss", "train_loss", "best_val_loss", "val_acc"):
        assert resumed[key] == full[key], key


def test_the_requeue_signal_is_submitits_own(monkeypatch):
    from submitit.slurm.slurm import SlurmJobEnvironment

    from scalinglab.callbacks.preemption import submitit_signal

    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert submitit_signal() is None  # not a submitit SLURM job: no preemption callback
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    # the signal submitit asks SLURM for (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)
    assert submitit_signal().name == f"SIG{SlurmJobEnvironment.USR_SIG}"
