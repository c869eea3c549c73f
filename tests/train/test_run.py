"""A job as `scalinglab-train` runs it: its record, bad configs, divergence, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab import ConfigError, records
from scalinglab.records import RunRecord
from scalinglab.train.recipe import train
from tests.helpers import fit, run

CONTRACT = {"status", "family", "depth", "width", "params", "flops_per_example", "train_flops",
            "examples_seen", "train_size", "seed", "val_loss", "val_acc", "train_loss",
            "best_val_loss", "time_s", "throughput", "peak_mem_bytes", "param_bytes", "epochs",
            "stop_reason", "precision"}


def test_train_writes_the_run_record(make_cfg):
    cfg = make_cfg("model=cnn", "model.width=8", "data.train_size=1024", "trainer.max_epochs=2")
    out = cfg.paths.output_dir
    record = run(cfg)
    on_disk = records.read_record(f"{out}/run.json")
    assert set(on_disk) == set(RunRecord().to_dict()) >= CONTRACT  # the one schema
    assert on_disk["status"] == "completed" and on_disk["family"] == "cnn"
    # conv(1->8, k5) + 2 x conv(8->8, k5) + head(8 channels x 5 positions -> 10), weights and
    # biases (40 -> 20 -> 10 -> 5: stride 2 per block)
    assert on_disk["params"] == record["params"] == (5 + 1) * 8 + 2 * (5 * 8 + 1) * 8 + 41 * 10
    assert on_disk["examples_seen"] == 2 * 1024 // 128 * 128
    assert on_disk["train_flops"] == 3 * on_disk["flops_per_example"] * on_disk["examples_seen"]
    assert on_disk["train_size"] == 1024 and on_disk["world_size"] == 1
    assert on_disk["epochs"] == 2 and on_disk["stop_reason"] == "max_epochs"
    assert 0 < on_disk["val_loss"] < 5 and 0 <= on_disk["val_acc"] <= 1
    assert on_disk["train_val_gap"] == pytest.approx(on_disk["val_loss"] - on_disk["train_loss"])
    assert on_disk["best_val_loss"] <= on_disk["val_loss"] + 1e-9
    assert on_disk["peak_mem_bytes"] > 0 and on_disk["time_s"] > 0 and on_disk["setup_s"] > 0
    assert on_disk["config"]["model"]["width"] == 8
    assert {"torch", "lightning", "python"} <= set(on_disk["versions"])


def test_val_from_train_records_the_test_split_on_the_final_weights(make_cfg):
    cfg = make_cfg("data.val_from_train=500", "trainer.max_epochs=2")
    record = run(cfg)
    assert record["status"] == "completed"
    assert record["examples_seen"] == 2 * 3500 // 128 * 128  # 500 held out of 4000
    assert 0 < record["test_loss"] < 5 and 0 <= record["test_acc"] <= 1
    assert record["test_loss"] != record["val_loss"]  # two splits: 500 held out, 1000 test
    plain = make_cfg("trainer.max_epochs=2")
    plain.paths.output_dir += "-plain"
    assert run(plain)["test_loss"] is None  # without it, val_* is the test split


def test_target_params_records_actual_count(make_cfg):
    cfg = make_cfg("model.target_params=5000", "data.train_size=256")
    _, _, record = fit(cfg)
    assert abs(record["params"] - 5000) / 5000 < 0.05
    assert record["width"] != cfg.model.width


def test_divergence_stops_the_job_and_is_recorded(make_cfg):
    cfg = make_cfg("module.lr=1e12", "module.warmup_frac=0", "trainer.max_epochs=3",
                   "trainer.log_every_n_steps=1", "model.width=64")
    record = run(cfg)
    assert record["status"] == "diverged"
    assert "non-finite" in record["reason"]
    assert record["steps"] < 3 * 4000 // 128  # stopped early
    on_disk = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
    assert on_disk["status"] == "diverged"


@pytest.mark.parametrize("override,key", [
    ("model.family=transformer", "model.family"),
    ("model.depth=-1", "model.depth"),
    ("model.width=0", "model.width"),
    ("data.train_size=999999", "data.train_size"),
    ("module.lr=-1", "module.lr"),
    ("module.lr=abc", "module.lr"),
    ("module.weight_decay=-0.1", "module.weight_decay"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("checkpoint.every_minutes=-1", "checkpoint.every_minutes"),
    ("data.batch_size=8000", "data.batch_size"),
])
def test_bad_config_fails_before_training(make_cfg, override, key):
    cfg = make_cfg(override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        train(cfg, cfg.paths.output_dir)


@pytest.mark.parametrize("overrides,expected", [
    (["model.depth=-1"], "config error: model.depth must be >= 0, got -1"),
    (["model.width=abc"], "config error: model.width must be an integer, got 'abc'"),
    (["trainer.max_epochs=abc"], "config error: trainer.max_epochs must be an integer"),
    (["seed=abc"], "config error: seed must be an integer, got 'abc'"),
    (["trainer.precision=64-bogus"], "config error: trainer: Precision '64-bogus' is invalid"),
    (["module.lr=abc"], "config error: module.lr must be a number, got 'abc'"),
    (["trainer=ddp_cpu", "trainer.devices=3"], "must divide evenly across 3 processes"),
    (["trainer.max_epochs=0"], "this budget trains nothing"),
    (["budget.flops=10"], "budget.flops=10 is less than one optimizer step"),
    (["curve.points=-1"], "curve.points must be >= 0"),
    (["model.parametrization=ntk"], "model.parametrization='ntk' is unknown"),
    (["model.parametrization=mup", "model.base_width=0.5"], "model.base_width must be >= 1"),
    (["data.val_from_train=4000"], "data.val_from_train=4000 leaves none"),
])
def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, cli_env, overrides, expected):
    result = subprocess.run([sys.executable, "-m", "scalinglab.train", *overrides],
                            cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-2000:]
    assert [line for line in out.splitlines() if "error" in line.lower()] == [
        next(line for line in out.splitlines() if expected in line)]
    assert "Traceback" not in out and "Epoch" not in out  # nothing trained
    (record,) = tmp_path.glob("outputs/*/*/run.json")  # the failure is recorded, with why
    assert json.loads(record.read_text())["status"] == "failed"


def test_cli_unknown_config_option_fails_before_training(tmp_path, cli_env):
    result = subprocess.run([sys.executable, "-m", "scalinglab.train", "data=imagenet"],
                            cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Could not find 'data/imagenet'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
