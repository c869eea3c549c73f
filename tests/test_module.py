"""The LightningModule's training calls: many optimizer steps a call, the same results."""

import csv
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from tests.conftest import fit

STEPS_PER_EPOCH = 4000 // 128  # MNIST-1D's default training set at the default batch


class Calls(pl.Callback):
    """Counts Lightning's training calls."""

    def __init__(self) -> None:
        self.calls = 0

        self.validations = 0

    def on_train_batch_end(self, *args) -> None:
        self.calls += 1

    def on_validation_end(self, *args) -> None:
        self.validations += 1


class GradNorms(pl.Callback):
    """What a user's callback sees just before each optimizer step."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])).item())


class AfterBackward(pl.Callback):
    def __init__(self) -> None:
        self.seen = 0

    def on_after_backward(self, trainer, pl_module) -> None:
        self.seen += 1


def test_steps_per_call_do_not_change_results(make_cfg):
    common = ["trainer.max_epochs=2", "model.dropout=0.1", "model.width=32"]
    one, many, hooked = Calls(), Calls(), Calls()
    plain, _, a = fit(make_cfg(*common, "module.call_ms=0"), one)
    _, _, b = fit(make_cfg(*common, "module.call_ms=60000"), many)
    # a callback with a step hook: Lightning's manual_backward and optimizer step run instead
    lightning, _, c = fit(make_cfg(*common, "module.call_ms=60000"), hooked, AfterBackward())
    assert plain.plain_steps and not lightning.plain_steps
    assert a["steps"] == b["steps"] == c["steps"] == 2 * STEPS_PER_EPOCH
    assert one.calls == 2 * STEPS_PER_EPOCH and many.calls == hooked.calls == 2  # one an epoch
    for key in ("val_loss", "train_loss", "val_acc", "best_val_loss"):
        assert a[key] == b[key] == c[key], key  # the same batches and updates, bit for bit


def test_validation_every_n_batches_gets_one_step_calls(make_cfg):
    seen = Calls()
    cfg = make_cfg("trainer.max_epochs=2", "data.train_size=3840",  # 30 steps an epoch
                   "+trainer.val_check_interval=0.5")
    module, _, _ = fit(cfg, seen)
    assert module.one_step_calls and seen.calls == 2 * 30
    assert seen.validations == 2 * 2  # after steps 15 and 30 of each epoch


def test_max_steps_stops_inside_a_call(make_cfg):
    _, trainer, record = fit(make_cfg("+trainer.max_steps=20", "module.call_ms=60000"))
    assert trainer.global_step == record["steps"] == 20


def test_train_loss_is_logged_at_every_nth_optimizer_step(make_cfg):
    cfg = make_cfg("logger=csv", "trainer.max_epochs=2", "trainer.log_every_n_steps=10")
    fit(cfg)
    text = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    train = [int(r["step"]) for r in rows if r["train/loss"]]
    val = [int(r["step"]) for r in rows if r["val/loss"]]
    assert train == list(range(10, 2 * STEPS_PER_EPOCH + 1, 10))
    assert val == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]  # optimizer steps, not calls
    assert all(float(r["train/lr"]) > 0 for r in rows if r["train/loss"])


def test_gradient_clip_val_is_applied_before_each_step(make_cfg):
    seen = GradNorms()  # implements on_before_optimizer_step, so Lightning's own step runs
    module, _, _ = fit(make_cfg("+trainer.gradient_clip_val=0.05", "module.lr=1e-3"), seen)
    assert not module.plain_steps and len(seen.norms) == STEPS_PER_EPOCH
    assert max(seen.norms) == pytest.approx(0.05, rel=1e-4)  # clipped, and it bit


@pytest.mark.parametrize("with_hook", [False, True])
def test_step_hooks_run_when_something_implements_them(make_cfg, with_hook):
    hook = AfterBackward()
    module, _, record = fit(make_cfg(), *([hook] if with_hook else []))
    # Plain backward() and step() only where no callback or the module implements the hooks.
    assert module.plain_steps is not with_hook
    assert hook.seen == (record["steps"] if with_hook else 0)
