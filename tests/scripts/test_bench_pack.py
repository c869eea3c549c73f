"""scripts/bench_pack.py's comparison of two sweeps: what it counts as agreeing, and what not."""

import importlib.util
import json

import pandas as pd
import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pack", ROOT / "scripts" / "bench_pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep(directory, jobs: dict[str, float]):
    """A sweep's job directories: each a run.json and a two-row curve.csv."""
    for job, val_loss in jobs.items():
        (directory / job).mkdir(parents=True)
        record = {"status": "completed", "steps": 10, "val_loss": val_loss, "val_acc": 0.5,
                  **{k: None for k in ("train_loss", "train_acc", "test_loss", "test_acc",
                                       "best_val_loss")}}
        (directory / job / "run.json").write_text(json.dumps(record))
        pd.DataFrame({"step": [5, 10], "lr": [0.1, 0.0], "val_loss": [2.0, val_loss],
                      "val_acc": [0.4, 0.5], "train_loss": [None, None],
                      "train_acc": [None, None]}).to_csv(directory / job / "curve.csv",
                                                         index=False)


def test_jobs_agree_to_4_decimals_or_are_counted_apart(bench, tmp_path):
    sweep(tmp_path / "a", {"j1": 1.00001, "j2": 1.5, "j3": float("nan")})
    sweep(tmp_path / "b", {"j1": 1.00002, "j2": 1.501, "j3": float("nan")})
    out = bench.compare(tmp_path / "a", tmp_path / "b")
    assert out["jobs"] == 3 and out["same_status_and_steps"] == 3
    assert out["agree_to_4_decimals"] == 2  # j2 is 1e-3 apart; NaN on both sides agrees
    assert out["largest_difference"] == pytest.approx(1e-3)


def test_sweeps_of_different_jobs_are_refused(bench, tmp_path):
    sweep(tmp_path / "a", {"j1": 1.0})
    sweep(tmp_path / "b", {"j2": 1.0})
    with pytest.raises(SystemExit, match="different jobs"):
        bench.compare(tmp_path / "a", tmp_path / "b")
