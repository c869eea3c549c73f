"""A compute budget per job: `budget.flops` or `budget.examples` sets the job's steps from the
model's measured FLOPs, and the LR schedule spans exactly that budget."""

import pytest

from scalinglab import ConfigError
from tests.helpers import BATCH, STEPS_PER_EPOCH, fit


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_a_flop_budget_lands_within_half_a_step(make_cfg, family):
    budget = 1e8
    job, record = fit(make_cfg(f"model={family}", "model.width=16", f"budget.flops={budget:g}"))
    trainer = job.trainer
    step_flops = 3 * record["flops_per_example"] * BATCH  # one optimizer step's
    assert abs(record["train_flops"] - budget) <= step_flops / 2
    assert record["budget_flops"] == budget and record["stop_reason"] == "max_steps"
    # the schedule spans exactly the budget's steps, whatever max_epochs says
    assert trainer.estimated_stepping_batches == record["steps"]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert record["val_loss"] > 0  # measured on the final weights, mid-epoch


def test_an_example_budget_ends_mid_epoch(make_cfg):
    _, record = fit(make_cfg("budget.examples=2000", "trainer.max_epochs=1"))
    assert abs(record["examples_seen"] - 2000) <= BATCH / 2
    assert record["epochs"] == pytest.approx(record["steps"] / STEPS_PER_EPOCH)
    assert record["epochs"] > 1  # the budget, not max_epochs, set the length


@pytest.mark.parametrize("overrides,match", [
    (["budget.flops=10"], "budget.flops=10 is less than one optimizer step"),
    (["budget.examples=10"], "budget.examples=10 is less than one optimizer step"),
    (["budget.flops=1e9", "budget.examples=1e4"], "not both"),
    (["budget.flops=abc"], "budget.flops must be a number"),
])
def test_bad_budgets_are_config_errors(make_cfg, overrides, match):
    with pytest.raises(ConfigError, match=match):
        fit(make_cfg(*overrides))
