"""Lightning's own loop, as a Lightning user drives it: Trainer flags and callbacks from the
config, each checked by its effect on the run, not only that it runs."""

import csv
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from scalinglab import ConfigError
from scalinglab.models import MLP
from scalinglab.module import Classifier
from tests.helpers import BATCH, STEPS_PER_EPOCH, fit


def metrics(cfg) -> list[dict]:
    text = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def steps_with(rows: list[dict], key: str) -> list[int]:
    """The optimizer steps at which `key` was logged."""
    return [int(float(r["trainer/step"])) for r in rows if r.get(key)]


class GradNorm(pl.Callback):
    """The largest gradient norm the optimizer stepped with (grads stay until the next step)."""

    def __init__(self) -> None:
        self.largest = 0.0

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        grads = [p.grad.flatten() for p in pl_module.parameters() if p.grad is not None]
        self.largest = max(self.largest, torch.cat(grads).norm().item())


def test_max_steps_ends_mid_epoch_measured_on_the_final_weights(make_cfg):
    cfg = make_cfg("logger=csv", "trainer.max_epochs=5", "trainer.max_steps=13")
    job, record = fit(cfg)
    assert record["steps"] == job.trainer.global_step == 13
    assert record["epochs"] == pytest.approx(13 / STEPS_PER_EPOCH)
    assert record["examples_seen"] == 13 * BATCH and record["stop_reason"] == "max_steps"
    # validated at the end of epoch 1, then at the last step
    assert steps_with(metrics(cfg), "val/loss") == [STEPS_PER_EPOCH, 13]
    assert record["val_loss"] > 0 and record["train_loss"] > 0


@pytest.mark.parametrize("budget", ["trainer.max_epochs=0", "trainer.max_steps=0"])
def test_a_budget_that_trains_nothing_is_a_config_error(make_cfg, budget):
    with pytest.raises(ConfigError, match="trains nothing"):
        fit(make_cfg(budget))


def test_max_time_stops_the_job_and_measures_it(make_cfg):
    cfg = make_cfg("logger=csv", "trainer.max_epochs=1000", "+trainer.max_time.seconds=1")
    _, record = fit(cfg)
    assert record["stop_reason"] == "max_time"
    assert 0 < record["epochs"] < 1000
    assert steps_with(metrics(cfg), "val/loss")[-1] == record["steps"]  # the final weights


def test_val_check_interval_in_batches_and_a_final_validation(make_cfg):
    cfg = make_cfg("logger=csv", "trainer.max_epochs=1", "trainer.val_check_interval=3")
    _, record = fit(cfg)
    # every 3 batches, then once more on the final weights (step 8 is not a multiple of 3)
    assert steps_with(metrics(cfg), "val/loss") == [3, 6, STEPS_PER_EPOCH]
    assert record["steps"] == STEPS_PER_EPOCH


def test_last_epoch_without_validation_is_still_measured(make_cfg):
    cfg = make_cfg("logger=csv", "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2")
    _, record = fit(cfg)
    assert steps_with(metrics(cfg), "val/loss") == [2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH]
    assert record["steps"] == 3 * STEPS_PER_EPOCH


def test_accumulated_batches_are_one_larger_batch(make_cfg):
    _, one = fit(make_cfg("trainer.max_epochs=2", f"data.batch_size={BATCH}"))
    _, acc = fit(make_cfg("trainer.max_epochs=2", f"data.batch_size={BATCH // 2}",
                          "trainer.accumulate_grad_batches=2"))
    assert acc["steps"] == one["steps"] == 2 * STEPS_PER_EPOCH
    assert acc["examples_seen"] == one["examples_seen"]
    assert acc["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)  # float error only
    assert acc["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "bf16-true"])
def test_precision_trains_and_is_recorded(make_cfg, precision):
    _, record = fit(make_cfg("trainer.max_epochs=4", f"trainer.precision={precision}"))
    assert record["precision"] == precision and record["status"] == "completed"
    assert 0 < record["val_loss"] < 2.3  # it learned something (chance: ln 10 = 2.30)
    assert record["flops_per_example"] > 0


def test_gradient_clip_val_clips_every_step(make_cfg):
    seen = GradNorm()
    fit(make_cfg("trainer.gradient_clip_val=0.05"), seen)
    assert seen.largest == pytest.approx(0.05, rel=1e-4)  # clipped, and it bit


def test_model_checkpoint_every_n_train_steps(make_cfg):
    cfg = make_cfg("callbacks=model_checkpoint", "trainer.max_steps=12", "trainer.max_epochs=5",
                   "callbacks.model_checkpoint.every_n_train_steps=4")
    fit(cfg)
    saved = sorted((Path(cfg.paths.output_dir) / "checkpoints" / "model").glob("*.ckpt"))
    assert [p.name for p in saved] == ["step=12.ckpt", "step=4.ckpt", "step=8.ckpt"]


def test_lr_monitor_logs_the_schedule(make_cfg):
    cfg = make_cfg("logger=csv", "callbacks=lr_monitor", "trainer.log_every_n_steps=2",
                   "trainer.max_epochs=2", "module.warmup_frac=0.2")
    fit(cfg)
    rows = [r for r in metrics(cfg) if r.get("lr-AdamW/pg1")]  # pg2: the biases
    lrs = [float(r["lr-AdamW/pg1"]) for r in rows]
    assert len(lrs) == 2 * STEPS_PER_EPOCH // 2
    assert lrs[0] < lrs[1] and lrs[-1] < max(lrs)  # warmup up, then the cosine down


def test_early_stopping_stops_and_the_record_says_why(make_cfg):
    # a min_delta no epoch can beat: it stops after patience + 1 validations
    cfg = make_cfg("callbacks=early_stopping", "callbacks.early_stopping.patience=1",
                   "callbacks.early_stopping.min_delta=10", "trainer.max_epochs=20")
    _, record = fit(cfg)
    assert record["steps"] == 2 * STEPS_PER_EPOCH
    assert record["stop_reason"].startswith("early_stopping")
    assert "val/loss" in record["stop_reason"] and record["status"] == "completed"


def test_train_loss_is_logged_at_every_nth_optimizer_step(make_cfg):
    cfg = make_cfg("logger=csv", "trainer.max_epochs=2", "trainer.log_every_n_steps=3")
    fit(cfg)
    rows = metrics(cfg)
    assert steps_with(rows, "train/loss") == list(range(3, 2 * STEPS_PER_EPOCH + 1, 3))
    assert steps_with(rows, "val/loss") == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert all(float(r["train/lr"]) > 0 for r in rows if r["train/loss"])
    examples = [float(r["trainer/examples_seen"]) for r in rows if r["train/loss"]]
    assert examples == [BATCH * s for s in range(3, 2 * STEPS_PER_EPOCH + 1, 3)]


def test_a_jobs_checkpoint_loads_with_load_from_checkpoint(make_cfg):
    """Lightning's own loading, as a user would reload a trained size: the model is an
    argument (the architecture), everything else comes from the checkpoint."""
    cfg = make_cfg("trainer.max_epochs=2", "checkpoint.every_minutes=0", "model.width=16")
    job, _ = fit(cfg)
    model = MLP(input_shape=(1, 40), num_outputs=10, depth=cfg.model.depth, width=16)
    loaded = Classifier.load_from_checkpoint(
        Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", model=model)
    assert loaded.lr == job.module.lr and loaded.hparams.weight_decay == cfg.module.weight_decay
    x = job.datamodule.x_val[:32]
    job.module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), job.module(x))  # the trained weights, not a fresh init


def test_a_mup_jobs_checkpoint_loads_into_the_model_built_as_the_job_built_it(make_cfg):
    """muP's readout multiplier is a hook, not a weight: rebuild the architecture with
    build_model (as the reference says) and the reloaded model is the trained one."""
    from omegaconf import OmegaConf

    from scalinglab.models import build_model, data_args

    cfg = make_cfg("trainer.max_epochs=1", "checkpoint.every_minutes=0", "model.width=64",
                   "model.parametrization=mup")
    job, _ = fit(cfg)
    x = job.datamodule.x_val[:32]
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True),
                        data_args(job.datamodule, x)).model
    loaded = Classifier.load_from_checkpoint(
        Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", model=model)
    job.module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), job.module(x))
        plain = MLP(input_shape=(1, 40), num_outputs=10, depth=cfg.model.depth, width=64)
        plain.load_state_dict(job.module.model.state_dict())
        assert not torch.allclose(plain(x), job.module(x))  # without the hook: 2x the logits
