"""model=transformer data=text module=lm: a language model's job, measured in tokens and bits per
byte, its curve, its budget in FLOPs, and the frontier read in tokens."""

import json
import math

import pytest

from tests.helpers import fit, run_cli

LM = ["model=transformer", "data=text", "module=lm", "model.width=32", "data.max_bytes=200000",
      "data.context=32", "data.batch_size=16", "~data.train_size", "trainer.max_epochs=-1",
      "trainer.max_steps=30"]


def test_a_language_models_job_is_measured_in_tokens_and_bits_per_byte(make_cfg):
    job, record = fit(make_cfg(*LM))
    assert record["status"] == "completed" and record["family"] == "transformer"
    assert record["tokens_per_example"] == 32
    assert record["examples_seen"] == 30 * 16 and record["tokens_seen"] == 30 * 16 * 32
    assert record["params_nonembedding"] == record["params"] - (256 + 32) * 32
    assert record["val_bpb"] == pytest.approx(record["val_loss"] / math.log(2), rel=1e-5)
    assert record["test_loss"] is not None and record["test_bpb"] is not None  # held out
    assert 0 < record["val_acc"] < 1 and record["val_loss"] < math.log(256)  # it learned
    assert record["data_info"]["bytes"] == 200_000 and record["data"] == "text"
    rows = job.curve.final_rows(job.recorder.record(job.trainer))
    assert rows[-1]["step"] == 30 and rows[0]["val_loss"] > rows[-1]["val_loss"]


def test_a_flop_budget_counts_every_token(make_cfg):
    _, record = fit(make_cfg(*LM, "budget.flops=2e10"))
    per_step = 3 * record["flops_per_example"] * 16
    assert record["steps"] == round(2e10 / per_step)
    assert abs(record["train_flops"] - 2e10) <= per_step / 2


def test_mup_for_the_transformer_trains(make_cfg):
    job, record = fit(make_cfg(*LM, "model.width=64", "model.parametrization=mup",
                               "model.base_width=32"))
    model = job.module.model
    assert model.mup.width_mult == 2 and model.mup.roles["readout.weight"] == "readout"
    # 4 heads: d_head 16, base d_head 8; sp would scale by 1/4
    assert model.blocks[0].scale == pytest.approx(math.sqrt(8) / 16)
    assert record["status"] == "completed" and record["val_loss"] < math.log(256) - 0.5


@pytest.mark.slow
def test_a_language_model_study_from_the_command_line(tmp_path, cli_env):
    """As the README shows it, shrunk: experiment=lm_study swept with -m, Kaplan's fit on the
    non-embedding parameters, the report."""
    sweep = tmp_path / "sweep"
    grid = run_cli(["scalinglab-train", "-m", "experiment=lm_study", "model.width=16,32,64",
                    "budget.examples=1600", "data.max_bytes=200000", f"hydra.sweep.dir={sweep}"],
                   cli_env, tmp_path)
    assert grid.returncode == 0, grid.stderr[-3000:]
    runs = sorted((json.loads(p.read_text()) for p in sweep.glob("*/run.json")),
                  key=lambda r: r["width"])
    assert [r["width"] for r in runs] == [16, 32, 64]
    assert all(r["status"] == "completed" and r["tokens_seen"] == 1600 * 64 for r in runs)
    assert runs[0]["params_nonembedding"] < runs[1]["params_nonembedding"] < runs[2][
        "params_nonembedding"]
    fitted = run_cli(["scalinglab-fit", str(sweep), "--x", "params_nonembedding", "--law",
                      "power", "--json"], cli_env, tmp_path)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    (law,) = json.loads(fitted.stdout)["fits"]
    assert law["x"] == ["params_nonembedding"] and law["group"] == {"family": "transformer"}
    assert law["n_fit"] == 3 and law["params"]["alpha"] > 0
    report = run_cli(["scalinglab-report", str(sweep), "--bootstrap", "20"], cli_env, tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "transformer" in (sweep / "report" / "report.html").read_text()
