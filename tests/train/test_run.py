"""A job as `scalinglab-train` runs it: its record, bad configs, divergence, exit codes."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab import ConfigError, exits
from scalinglab.records.io import read_record
from scalinglab.records.schema import RunRecord
from scalinglab.train.job import build
from scalinglab.train.run import OUTCOMES, outcome_of
from tests.helpers import BATCH, STEPS_PER_EPOCH, TRAIN_SIZE, fit, run

CONTRACT = {"status", "family", "depth", "width", "params", "flops_per_example", "train_flops",
            "examples_seen", "train_size", "seed", "val_loss", "val_acc", "train_loss",
            "best_val_loss", "time_s", "throughput", "peak_mem_bytes", "param_bytes", "epochs",
            "stop_reason", "precision"}


def test_train_writes_the_run_record(make_cfg):
    cfg = make_cfg("model=cnn", "model.width=8", "trainer.max_epochs=2")
    out = cfg.paths.output_dir
    record = run(cfg)
    on_disk = read_record(f"{out}/run.json")
    assert set(on_disk) == set(RunRecord().to_dict()) >= CONTRACT  # the one schema
    assert on_disk["status"] == "completed" and on_disk["family"] == "cnn"
    # conv(1->8, k5) + 2 x conv(8->8, k5) + head(8 channels x 5 positions -> 10), weights and
    # biases (40 -> 20 -> 10 -> 5: stride 2 per block)
    assert on_disk["params"] == record["params"] == (5 + 1) * 8 + 2 * (5 * 8 + 1) * 8 + 41 * 10
    assert on_disk["examples_seen"] == 2 * STEPS_PER_EPOCH * BATCH
    assert on_disk["train_flops"] == 3 * on_disk["flops_per_example"] * on_disk["examples_seen"]
    assert on_disk["train_size"] == TRAIN_SIZE and on_disk["world_size"] == 1
    assert on_disk["epochs"] == 2 and on_disk["stop_reason"] == "max_epochs"
    assert 0 < on_disk["val_loss"] < 5 and 0 <= on_disk["val_acc"] <= 1
    assert on_disk["train_val_gap"] == pytest.approx(on_disk["val_loss"] - on_disk["train_loss"])
    assert on_disk["best_val_loss"] <= on_disk["val_loss"] + 1e-9
    assert on_disk["peak_mem_bytes"] > 0 and on_disk["time_s"] > 0 and on_disk["setup_s"] > 0
    # parameters, gradients and AdamW's two moments, plus its step counter per tensor (8)
    assert 4 * on_disk["param_bytes"] < on_disk["state_bytes"] <= 4 * on_disk["param_bytes"] + 64
    assert on_disk["throughput"] == pytest.approx(on_disk["examples_seen"] / on_disk["time_s"])
    assert on_disk["config"]["model"]["width"] == 8
    assert {"torch", "lightning", "python"} <= set(on_disk["versions"])


def test_by_default_held_out_training_examples_validate_and_the_test_split_is_measured_once(
        make_cfg):
    record = run(make_cfg("trainer.max_epochs=2"))
    assert record["status"] == "completed"
    assert record["examples_seen"] == 2 * STEPS_PER_EPOCH * BATCH
    assert 0 < record["test_loss"] < 5 and 0 <= record["test_acc"] <= 1
    assert record["test_loss"] != record["val_loss"]  # two splits: 500 held out, 1000 test
    assert record["data_info"]["validation"] == "500 training examples held out (seed 0)"


def test_turning_the_held_out_split_off_says_validation_is_the_test_split(make_cfg):
    cfg = make_cfg("data.val_from_train=null", "trainer.max_epochs=1")
    with pytest.warns(UserWarning, match="validation is the test split") as caught:
        record = run(cfg)
    assert sum("validation is the test split" in str(w.message) for w in caught) == 1
    assert record["test_loss"] is None  # val_* is the test split, measured once
    assert record["data_info"]["validation"] == "the test split (data.val_from_train=null)"


def test_target_params_records_actual_count(make_cfg):
    cfg = make_cfg("model.target_params=5000", "data.train_size=256")
    _, record = fit(cfg)
    assert abs(record["params"] - 5000) / 5000 < 0.05
    assert record["width"] != cfg.model.width


def test_divergence_stops_the_job_is_recorded_and_exits_1(make_cfg):
    cfg = make_cfg("module.lr=1e12", "module.warmup_frac=0", "trainer.max_epochs=3",
                   "trainer.log_every_n_steps=1", "model.width=64")
    with pytest.raises(SystemExit) as stop:
        run(cfg)
    assert stop.value.code == exits.FAILED
    on_disk = json.loads((Path(cfg.paths.output_dir) / "run.json").read_text())
    assert on_disk["status"] == "diverged" and "non-finite" in on_disk["reason"]
    assert on_disk["steps"] < 3 * STEPS_PER_EPOCH  # stopped early


def test_every_outcome_has_its_status_and_exit_code():
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from scalinglab.callbacks.preemption import Preempted

    def row(error):
        outcome, code = outcome_of(error)
        return outcome.status, code, outcome.stops_sweep

    assert row(Preempted(12, None)) == ("preempted", exits.OK, True)
    assert row(SIGTERMException()) == ("failed", exits.SIGTERM, True)
    assert row(SystemExit(1)) == ("failed", 1, True)  # Lightning's own exit after Ctrl-C
    assert row(KeyboardInterrupt()) == ("failed", exits.INTERRUPTED, True)
    assert row(ConfigError("x")) == ("failed", exits.CONFIG, False)
    assert row(RuntimeError("x")) == ("failed", exits.FAILED, False)
    assert OUTCOMES[-1][0] is Exception  # the last row catches every other error


BAD = [
    (["model._target_=scalinglab.models.Perceiver"],
     "model._target_='scalinglab.models.Perceiver' cannot be imported"),
    (["model.target_params=10"], "model.target_params=10 is below the smallest model"),
    (["model=transformer", "data=text", "module=lm", "model.width=30"],
     "model.heads=4 does not divide model.width=30"),
    (["data=text", "data.path=/nowhere.txt"], "data.path=/nowhere.txt is not a file"),
    (["data=text", "data.context=100000"], "data.context=100000 is longer than the corpus"),
    (["model.depth=-1"], "model.depth must be >= 0, got -1"),
    (["model.width=0"], "model.width must be >= 1"),
    (["model.width=abc"], "model.width must be an integer, got 'abc'"),
    (["data.train_size=999999"], "data.train_size=999999 is larger than the 3500"),
    (["module.lr=-1"], "module.lr must be > 0"),
    (["module.lr=abc"], "module.lr must be a number, got 'abc'"),
    (["module.weight_decay=-0.1"], "module.weight_decay must be >= 0"),
    (["seed=abc"], "seed must be an integer, got 'abc'"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs must be an integer"),
    (["trainer.max_epochs=0"], "this budget trains nothing"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches must be >= 1"),
    (["trainer.precision=64-bogus"], "trainer: Precision '64-bogus' is invalid"),
    (["+trainer.max_time=soon"], "trainer.max_time: `Timer(duration='soon')` is not a valid"),
    (["trainer=ddp_cpu", "trainer.devices=3"], "must divide evenly across 3 processes"),
    (["checkpoint.every_minutes=-1"], "checkpoint.every_minutes must be >= 0"),
    (["data.batch_size=8000"], "data.batch_size=8000 x trainer.accumulate_grad_batches=1"),
    (["budget.flops=10"], "budget.flops=10 is less than one optimizer step"),
    (["curve.points=-1"], "curve.points must be >= 0"),
    (["model.parametrization=ntk"], "model.parametrization='ntk' is unknown"),
    (["model.parametrization=mup", "model.base_width=0.5"], "model.base_width must be >= 1"),
    (["data.val_from_train=4000"], "data.val_from_train=4000 leaves none"),
    (["matmul_precision=low"], "matmul_precision must be one of highest, high, medium"),
]


@pytest.mark.parametrize("overrides,expected", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_bad_config_is_one_error_line_exit_2_and_a_failed_record(make_cfg, caplog, overrides,
                                                                   expected):
    cfg = make_cfg(*overrides)
    with caplog.at_level(logging.INFO, logger="scalinglab"), pytest.raises(SystemExit) as stop:
        run(cfg)
    assert stop.value.code == exits.CONFIG
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].startswith("config error: ") and expected in errors[0]
    record = read_record(Path(cfg.paths.output_dir) / "run.json")
    assert record["status"] == "failed" and record["reason"].startswith("ConfigError: ")
    assert not record["steps"]  # nothing trained


def test_a_bad_config_fails_before_any_training(make_cfg):
    # build() refuses it: no data loaded, no step taken
    with pytest.raises(ConfigError, match=r"module\.lr"):
        build(make_cfg("module.lr=abc"))


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, cli_env):
    result = subprocess.run([sys.executable, "-m", "scalinglab.train", "module.lr=abc"],
                            cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-2000:]
    assert [line for line in out.splitlines() if "error" in line.lower()] == [
        next(line for line in out.splitlines()
             if "config error: module.lr must be a number, got 'abc'" in line)]
    assert "Traceback" not in out and "Epoch" not in out  # nothing trained
    (record,) = tmp_path.glob("outputs/*/*/run.json")  # the failure is recorded, with why
    assert json.loads(record.read_text())["status"] == "failed"


def test_cli_unknown_config_option_fails_before_training(tmp_path, cli_env):
    result = subprocess.run([sys.executable, "-m", "scalinglab.train", "data=imagenet"],
                            cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Could not find 'data/imagenet'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_ctrl_c_before_training_is_recorded_as_such(make_cfg, monkeypatch):
    import scalinglab.train.job
    from scalinglab.module import Task

    def interrupted(*args, **kwargs):  # stands in for a user's Ctrl-C at that moment
        raise KeyboardInterrupt

    expected = "interrupted ({}) before training started; a re-run starts it"
    with monkeypatch.context() as patch:  # while the job is built: the shell's 130
        patch.setattr(scalinglab.train.job, "build_model", interrupted)
        cfg = make_cfg()
        with pytest.raises(SystemExit) as stop:
            run(cfg)
        assert stop.value.code == exits.INTERRUPTED
        record = read_record(Path(cfg.paths.output_dir) / "run.json")
        assert record["status"] == "failed"
        assert record["reason"] == expected.format("KeyboardInterrupt")
    # while Lightning sets up the optimizer, inside fit: Lightning turns Ctrl-C into its own
    # exit(1)
    monkeypatch.setattr(Task, "configure_optimizers", interrupted)
    cfg = make_cfg("seed=1")
    with pytest.raises(SystemExit) as stop:
        run(cfg)
    assert stop.value.code == 1
    record = read_record(Path(cfg.paths.output_dir) / "run.json")
    assert record["reason"] == expected.format("SystemExit")
