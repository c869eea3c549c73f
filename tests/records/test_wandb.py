"""W&B: real offline runs from real multiruns, read back; the cloud API is replaced by a
stand-in."""

import json
from types import SimpleNamespace

import pytest

from scalinglab.records import wandb as tracking
from scalinglab.records.tables import collect
from tests.helpers import run_cli

TINY = ["trainer.max_epochs=2", "data.train_size=512", "trainer.enable_progress_bar=false"]


def offline_runs(directory):
    return sorted(p for p in directory.rglob("offline-run-*") if p.is_dir())


def test_no_key_means_offline_without_prompt(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert tracking.resolve_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert tracking.resolve_mode(None) == "online"
    assert tracking.resolve_mode("disabled") == "disabled"


def test_api_export_keeps_finished_runs_with_record_columns():
    # The W&B cloud cannot be reached here: a stand-in with the attribute shape of
    # wandb.Api().runs(...) (name, group, job_type, config, summary, state).
    def run(name, state, params, job_type="mlp"):
        return SimpleNamespace(name=name, group="study1", job_type=job_type, state=state,
                               config={"family": "mlp", "depth": 2, "width": 8, "seed": 0},
                               summary={"size/params": params, "final/val_loss": 1.5,
                                        "best/val_loss": 1.4, "status": "completed"})

    calls = []

    class Api:
        def runs(self, path, filters=None):
            calls.append((path, filters))
            return [run("a", "finished", 100), run("b", "crashed", 200),
                    run("c", "running", 300), run("fit", "finished", 0, job_type="fit")]

    rows, skipped = tracking.read_api("me/proj", group="study1", api=Api())
    assert calls == [("me/proj", {"group": "study1"})]
    assert [r["params"] for r in rows] == [100]
    assert rows[0]["val_loss"] == 1.5 and rows[0]["best_val_loss"] == 1.4
    assert rows[0]["family"] == "mlp" and rows[0]["study"] == "study1"
    assert skipped == {"state crashed": 1, "state running": 1, "fit run, not a training run": 1}


@pytest.mark.slow
def test_multirun_logs_one_offline_run_per_job_and_reads_back(tmp_path, wandb_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "logger=wandb", "study=demo",
                      "model.width=4,16,64", *TINY, f"hydra.sweep.dir={sweep}"],
                     wandb_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("logging offline") == 1  # one notice line, no prompt
    jobs = [p for p in sweep.iterdir() if p.is_dir()]
    assert len(jobs) == 3
    for job in jobs:
        assert len(offline_runs(job)) == 1  # exactly one run per job, in its own directory
    rows, skipped = tracking.read_offline(sweep)
    assert skipped == {} and len(rows) == 3
    local = {r["job"]: r for r in collect(sweep).to_dict("records")}
    for row in rows:
        rec = local[row["job"]]
        assert row["params"] == rec["params"] and row["val_loss"] == pytest.approx(rec["val_loss"])
        assert row["study"] == "demo" and row["family"] == "mlp"
    assert not (tmp_path / "home" / ".cache" / "wandb").exists()  # WANDB_CACHE_DIR is used

    # the same table from the offline runs alone, through the user-facing commands
    only = tmp_path / "only-wandb"
    only.mkdir()
    for run_dir in offline_runs(sweep):
        (only / run_dir.name).symlink_to(run_dir)
    out = run_cli(["scalinglab-export", str(only), "-o", str(tmp_path / "w.csv")], wandb_env,
                  tmp_path)
    assert out.returncode == 0, out.stderr
    fit = run_cli(["scalinglab-fit", str(sweep), "--law", "power", "--wandb", "demo-proj",
                   "--group", "demo"], wandb_env, tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    (fit_run,) = offline_runs(tmp_path / "wandb")
    doc = json.loads(run_cli(["wandb", "leet", "inspect", "--summary", "--json", str(fit_run)],
                             wandb_env, tmp_path).stdout)
    assert doc["summary"]["fit/mlp/alpha"] == pytest.approx(
        json.loads(run_cli(["scalinglab-fit", str(sweep), "--law", "power", "--json"],
                           wandb_env, tmp_path).stdout)["fits"][0]["params"]["alpha"])


@pytest.mark.slow
def test_ddp_job_makes_exactly_one_run(tmp_path, wandb_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "logger=wandb", "trainer=ddp_cpu",
                      "trainer.devices=2", *TINY, f"hydra.sweep.dir={sweep}"], wandb_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(offline_runs(tmp_path)) == 1
    (row,), _ = tracking.read_offline(sweep)
    assert row["world_size"] == 2


@pytest.mark.slow
def test_a_job_that_did_not_complete_closes_its_run_failed(tmp_path, wandb_env):
    env = {**wandb_env, "WANDB_MODE": "offline"}
    run_dir = tmp_path / "job"
    result = run_cli(["scalinglab-train", "logger=wandb", "module.lr=1e12",
                      "module.warmup_frac=0", "trainer.log_every_n_steps=1", *TINY,
                      f"hydra.run.dir={run_dir}"], env, tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]  # it did not complete
    assert json.loads((run_dir / "run.json").read_text())["status"] == "diverged"
    (run,) = offline_runs(run_dir)
    doc = json.loads(run_cli(["wandb", "leet", "inspect", "--summary", "--json", str(run)],
                             env, tmp_path).stdout)
    assert doc["exit_code"] == 1 and doc["state"] == "failed"
    assert doc["summary"]["status"] == "diverged"  # the summary is the record
