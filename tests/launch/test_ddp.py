"""DDP inside Hydra multiruns, with real gloo processes launched as a user would."""

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.callbacks.curve import log_steps
from tests.helpers import run_cli

TINY = ["trainer.max_epochs=2", "data.train_size=1024"]


def records(sweep, key):
    """Job directories and their records, sorted by a record key."""
    pairs = [(p, json.loads((p / "run.json").read_text())) for p in sweep.iterdir() if p.is_dir()]
    pairs.sort(key=lambda pr: pr[1][key])
    return [p for p, _ in pairs], [r for _, r in pairs]


@pytest.mark.slow
def test_ddp_multirun_one_dir_and_one_record_per_job(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "trainer=ddp_cpu", "trainer.devices=2",
                      "model.width=8,32", *TINY, f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs, recs = records(sweep, "width")
    assert len(jobs) == 2  # no extra job or rank directories
    assert [p.name for p in jobs] == [r["job"] for r in recs]
    assert [r["world_size"] for r in recs] == [2, 2]
    assert all(r["strategy"] == "HydraDDPStrategy" and r["status"] == "completed" for r in recs)
    assert [r["width"] for r in recs] == [8, 32]  # each job ran its own config, once
    for job in jobs:
        assert (job / "train_rank1.log").exists()  # rank 1 wrote into THIS job's directory
        assert len(list(job.rglob("run.json"))) == 1
    # nothing stray: no outputs/ or multirun/ trees from the children
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    assert sorted(p.name for p in sweep.iterdir() if not p.is_dir()) == [
        "multirun.yaml", "runs.csv", "sweep_summary.json"]


@pytest.mark.slow
def test_one_and_two_processes_agree(tmp_path, cli_env):
    # The batch size is global: 1 and 2 processes see the same examples in the same order
    # per step, so without dropout the results agree to float rounding (measured: 1e-7).
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "trainer=ddp_cpu", "trainer.devices=2,1",
                      *TINY, f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (one_dir, two_dir), (one, two) = records(sweep, "world_size")
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert two["examples_seen"] == one["examples_seen"] == 2 * 1024
    assert two["steps"] == one["steps"]
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    assert two["val_acc"] == pytest.approx(one["val_acc"], abs=2e-3)
    # The learning curve's evaluations reduce across the ranks too: the same curve.
    curves = [pd.read_csv(d / "curve.csv") for d in (one_dir, two_dir)]
    assert curves[0]["step"].tolist() == curves[1]["step"].tolist()
    assert curves[0]["step"].tolist() == [*log_steps(16, 8), 16]  # log-spaced, and the end
    np.testing.assert_allclose(curves[1]["val_loss"], curves[0]["val_loss"], rtol=1e-4)


@pytest.mark.slow
def test_ddp_single_run_without_multirun(tmp_path, cli_env):
    # No -m: the children get a one-job command too. The last epoch is not a validation epoch,
    # so the final weights are measured after fit, on the same two ranks.
    run_dir = tmp_path / "run"
    result = run_cli(["scalinglab-train", "trainer=ddp_cpu", "trainer.devices=2", *TINY,
                      "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2",
                      f"hydra.run.dir={run_dir}"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["world_size"] == 2
    assert record["steps"] == 3 * 1024 // 128 and record["epochs"] == 3
    assert record["val_loss"] > 0 and record["best_val_loss"] <= record["val_loss"]
    assert (run_dir / "train_rank1.log").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stray directories
