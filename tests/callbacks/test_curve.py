"""The learning curve: curve.csv beside run.json, at log-spaced steps plus the end."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.callbacks.curve import log_steps
from scalinglab.records.io import CURVE_NAME
from scalinglab.records.schema import CURVE_COLUMNS
from tests.helpers import BATCH, STEPS_PER_EPOCH, fit, run

STEPS = 4 * STEPS_PER_EPOCH  # trainer.max_epochs=4


@pytest.mark.parametrize("total, points", [(124, 8), (10_000, 12), (20, 8), (2, 8)])
def test_log_steps_are_evenly_spaced_in_log_and_before_the_end(total, points):
    steps = log_steps(total, points)
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] < total
    assert len(steps) <= points
    if total >= 2**points:  # no two points round together: exactly `points`, ratio constant
        ratios = np.diff(np.log(steps))
        assert len(steps) == points and np.allclose(ratios, math.log(total) / points, atol=0.2)
    assert log_steps(total, 0) == [] and log_steps(1, 8) == []


def test_a_job_writes_its_curve_beside_its_record(make_cfg):
    cfg = make_cfg("trainer.max_epochs=4", "curve.points=8")
    record = run(cfg)
    curve = pd.read_csv(Path(cfg.paths.output_dir) / CURVE_NAME)
    assert list(curve.columns) == list(CURVE_COLUMNS)
    assert curve["step"].tolist() == [*log_steps(STEPS, 8), STEPS]
    assert curve["step"].is_monotonic_increasing
    # the end is the record's final validation; the points before it, the schedule's progress
    end = curve.iloc[-1]
    for key in ("val_loss", "val_acc", "train_loss", "train_acc", "train_flops",
                "examples_seen"):
        assert end[key] == pytest.approx(record[key]), key
    assert end["progress"] == 1 and (curve["progress"].iloc[:-1] < 1).all()
    assert (curve["examples_seen"] == curve["step"] * BATCH).all()
    assert (curve["epoch"] == curve["step"] / STEPS_PER_EPOCH).all()
    assert (curve["train_flops"] == 3 * record["flops_per_example"] * curve["examples_seen"]).all()
    assert curve["val_loss"].iloc[-1] < curve["val_loss"].iloc[0]  # it learned
    assert curve["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)  # the cosine ends at zero


def test_measuring_the_curve_leaves_training_unchanged(make_cfg, tmp_path):
    records = []
    for points in (0, 8):
        cfg = make_cfg("trainer.max_epochs=2", "model.dropout=0.1", f"curve.points={points}")
        cfg.paths.output_dir = str(tmp_path / f"points{points}")
        records.append(fit(cfg)[1])
    without, with_curve = records
    for key in ("val_loss", "train_loss", "val_acc", "best_val_loss"):
        assert with_curve[key] == without[key], key
    assert with_curve["identity"] == without["identity"]  # a measurement, not a training key


def test_curve_points_zero_keeps_the_end_only(make_cfg):
    cfg = make_cfg("trainer.max_epochs=2", "curve.points=0")
    record = run(cfg)
    curve = pd.read_csv(Path(cfg.paths.output_dir) / CURVE_NAME)
    assert curve["step"].tolist() == [record["steps"]]


def test_a_step_budget_curve_spans_its_own_schedule(make_cfg):
    cfg = make_cfg("trainer.max_epochs=-1", "trainer.max_steps=50", "curve.points=8",
                   "trainer.accumulate_grad_batches=2")
    record = run(cfg)
    curve = pd.read_csv(Path(cfg.paths.output_dir) / CURVE_NAME)
    assert curve["step"].tolist() == [*log_steps(50, 8), 50] and record["steps"] == 50
    # two batches per optimizer step: examples seen count both
    assert (curve["examples_seen"] == curve["step"] * 2 * BATCH).all()



def test_the_curves_numbers_are_lightnings_validation(make_cfg):
    # validating after every step, Lightning measures the same weights the curve does
    cfg = make_cfg("logger=csv", "trainer.max_epochs=-1", "trainer.max_steps=10",
                   "trainer.val_check_interval=1", "curve.points=8", "model.dropout=0.1")
    run(cfg)
    curve = pd.read_csv(Path(cfg.paths.output_dir) / CURVE_NAME).set_index("step")
    logged = pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")
    logged = logged.dropna(subset=["val/loss"]).set_index("trainer/step")
    for step in curve.index:
        for column, key in (("val_loss", "val/loss"), ("val_acc", "val/acc"),
                            ("train_loss", "train_eval/loss"), ("train_acc", "train_eval/acc")):
            assert curve.loc[step, column] == pytest.approx(logged.loc[float(step), key],
                                                            rel=1e-6), (step, column)
