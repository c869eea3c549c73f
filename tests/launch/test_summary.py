"""Real multiruns launched as a user would: `scalinglab-train -m ...` in a subprocess."""

import json
from pathlib import Path

import pandas as pd
import pytest

from scalinglab.exits import PARTIAL as EXIT_PARTIAL
from scalinglab.launch.summary import exit_code
from tests.helpers import run_cli

TINY = ["trainer.max_epochs=1", "data.train_size=512", "trainer.enable_progress_bar=false"]


def test_exit_code_rules():
    def summary(reason="RuntimeError: boom", **counts):
        full = {"completed": 0, "diverged": 0, "failed": 0, "preempted": 0, **counts}
        jobs = [{"status": s, "reason": None if s == "completed" else reason}
                for s, n in full.items() for _ in range(n)]
        return {"n_jobs": sum(full.values()), "counts": full, "jobs": jobs}

    assert exit_code(summary(completed=3)) == 0
    assert exit_code(summary(completed=2, failed=1)) == EXIT_PARTIAL
    assert exit_code(summary(completed=2, diverged=1)) == EXIT_PARTIAL
    assert exit_code(summary(failed=2)) == 1
    assert exit_code(summary()) == 1
    # every job refused by a config error: the sweep's exit is a config error's
    assert exit_code(summary("ConfigError: module.lr must be a number", failed=2)) == 2


@pytest.mark.slow
def test_multirun_writes_one_record_per_job_then_fits(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "model.width=4,16,64,256", *TINY,
                      f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [p for p in sweep.iterdir() if p.is_dir()]
    assert len(jobs) == 4
    recs = sorted((json.loads((p / "run.json").read_text()) for p in jobs),
                  key=lambda r: r["width"])
    params = [r["params"] for r in recs]
    assert params == sorted(params) and len(set(params)) == 4  # params grow with width
    assert {p.name for p in jobs} == {r["job"] for r in recs}  # dirs named by job identity
    assert all(r["status"] == "completed" for r in recs)
    table = pd.read_csv(sweep / "runs.csv")
    assert sorted(table["params"]) == params
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 4, "diverged": 0, "failed": 0, "preempted": 0}
    assert not list(tmp_path.glob("outputs")) and not list(tmp_path.glob("multirun"))

    fit = run_cli(["scalinglab-fit", str(sweep), "--out", str(sweep / "fit"), "--json"],
                  cli_env, tmp_path)
    assert fit.returncode == 0, fit.stderr
    doc = json.loads(fit.stdout)
    assert doc["fits"][0]["group"] == {"family": "mlp"} and doc["fits"][0]["n_fit"] == 4
    assert (sweep / "fit" / "fit.png").stat().st_size > 0


@pytest.mark.slow
def test_failed_job_does_not_stop_the_sweep(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "model.depth=-1,1", *TINY,
                      f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert result.returncode == EXIT_PARTIAL
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 1, "diverged": 0, "failed": 1, "preempted": 0}
    failed = next(j for j in summary["jobs"] if j["status"] == "failed")
    assert "model.depth must be >= 0" in failed["reason"]


@pytest.mark.slow
def test_failed_and_diverged_jobs_leave_the_others_intact(tmp_path, cli_env):
    # lr 1e12 diverges; a batch larger than the data fails at run time (in the dataloader)
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "module.lr=1e-2,1e12", "data.batch_size=128,4096",
                      "trainer.log_every_n_steps=1", *TINY, f"hydra.sweep.dir={sweep}"],
                     cli_env, tmp_path)
    assert result.returncode == EXIT_PARTIAL
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 1, "diverged": 1, "failed": 2, "preempted": 0}
    by_status = {j["status"]: j for j in summary["jobs"]}
    assert "non-finite" in by_status["diverged"]["reason"]
    assert "data.batch_size=4096" in by_status["failed"]["reason"]
    done = json.loads((Path(by_status["completed"]["path"]) / "run.json").read_text())
    assert done["val_loss"] > 0 and done["config"]["module"]["lr"] == 1e-2
    assert "3 failed" not in result.stdout and "1 diverged" in result.stdout


@pytest.mark.slow
def test_rerunning_a_finished_sweep_trains_nothing(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    args = ["scalinglab-train", "-m", "model.width=4,16", *TINY, f"hydra.sweep.dir={sweep}"]
    assert run_cli(args, cli_env, tmp_path).returncode == 0
    stamps = {p: p.stat().st_mtime_ns for p in sweep.glob("*/run.json")}
    again = run_cli(args, cli_env, tmp_path)
    assert again.returncode == 0
    assert again.stdout.count("skipping") + again.stderr.count("skipping") == 2
    assert "Epoch" not in again.stderr and "completed: mlp" not in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/run.json")} == stamps
    forced = run_cli([*args, "force=true"], cli_env, tmp_path)
    assert forced.returncode == 0
    assert all(p.stat().st_mtime_ns > stamps[p] for p in stamps)


@pytest.mark.slow
def test_a_sweep_of_config_errors_exits_2_and_records_each(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "module.lr=abc,-1", *TINY,
                      f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"]["failed"] == 2
    assert all(j["reason"].startswith("ConfigError: module.lr") for j in summary["jobs"])
    assert "Traceback" not in result.stdout + result.stderr
