"""The page: every section rendered, values escaped, warnings shown, bad input as one line."""

import json

import pandas as pd
import pytest

from scalinglab.files import write_json
from scalinglab.report.page import build, main
from tests.helpers import run_cli
from tests.report.test_sections import study_table


def test_the_page_answers_the_studys_questions_escaped_with_its_warnings(tmp_path):
    table = study_table()
    table["family"] = table["family"].replace("mlp", "<script>x</script>")  # from the runs
    table.loc[1, "status"] = "diverged"
    table.loc[2, "val_loss"] = float("nan")
    page = build(table, tmp_path / "report", "<b>title</b>", target_loss=0.6, bootstrap=20,
                 ci=0.8)
    text = page.read_text()
    for heading in ("Performance vs size", "Generalisation vs size", "Resources vs size",
                    "The stopping rule"):
        assert f"<h2>{heading}</h2>" in text
    for image in ("performance_loss.png", "performance_acc.png", "generalisation.png",
                  "resources_time_s.png", "resources_param_bytes.png"):
        assert f'src="{image}"' in text and (tmp_path / "report" / image).stat().st_size > 0
    assert "80% bootstrap interval (20 resamples" in text  # the level follows --ci
    assert "alpha's interval and the band are 80%" in text
    assert "grouped by family." in text
    assert "<script>x</script>" not in text and "&lt;script&gt;" in text
    assert "<b>title</b>" not in text and "&lt;b&gt;title&lt;/b&gt;" in text
    notes = text[text.index("<h2>Notes</h2>"):]
    assert "left out 1 run(s) that did not complete" in notes
    assert "dropping 1 row(s) with a missing or NaN value" in notes


def test_cli_writes_into_the_sweep_and_rejects_bad_input(tmp_path, cli_env, capsys):
    sweep = tmp_path / "sweep"
    for i, row in study_table().head(6).iterrows():  # one family: a small page
        write_json(sweep / f"job{i}" / "run.json", json.loads(row.to_json()))
    main([str(sweep), "--bootstrap", "0"])
    assert (sweep / "report" / "report.html").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "empty")])
    assert stop.value.code == 2 and "no run.json" in capsys.readouterr().err
    result = run_cli(["scalinglab-report", str(sweep), "--ci", "2"], cli_env, tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "scalinglab-report: error: need --bootstrap >= 0 and 0 < --ci < 1, got 200, 2.0"]


def test_the_page_draws_the_compute_frontier_and_the_best_lr(tmp_path):
    from tests.fit.tables import isoflop_table, lr_sweep

    front = isoflop_table().assign(status="completed", family="mlp", train_loss=1.0)
    text = build(front, tmp_path / "f", "isoflop", bootstrap=20).read_text()
    assert "<h2>The compute frontier</h2>" in text and 'src="frontier.png"' in text
    assert "a = 0.5 [" in text and "D_opt (examples)" in text
    # a language model's runs: D is in tokens (64 a window here), and the exponents hold
    tokens = front.assign(tokens_seen=64 * front["examples_seen"], family="transformer")
    text = build(tokens, tmp_path / "t", "lm_isoflop", bootstrap=0).read_text()
    assert "D_opt (tokens)" in text and "b = 0.5" in text
    table = lr_sweep(sizes=(1e3, 3e3, 1e4, 3e4, 1e5)).assign(train_loss=1.0, time_s=1.0)
    text = build(table, tmp_path / "lr", "lr", bootstrap=0).read_text()
    assert "<h2>Best LR vs size</h2>" in text and (tmp_path / "lr" / "best_lr.png").exists()
    assert "both chose each size" in text  # validated on the test split: it says so


@pytest.mark.slow
def test_model_x_data_grid_gives_a_joint_law_and_a_report(tmp_path, cli_env):
    """The user's path: a (shrunk) model x data grid, the joint fit, the report."""
    sweep = tmp_path / "sweep"
    grid = run_cli(["scalinglab-train", "-m", "experiment=mlp_data_grid",
                    "data.num_samples=5000", "model.target_params=1000,3000,10000",
                    "data.train_size=1000,3500", "trainer.max_epochs=3",
                    f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert grid.returncode == 0, grid.stderr[-2000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/run.json")]
    assert sorted({r["train_size"] for r in runs}) == [1000, 3500] and len(runs) == 6
    assert all(r["examples_seen"] == 3 * (r["train_size"] // 128) * 128 for r in runs)
    fitted = run_cli(["scalinglab-fit", str(sweep), "--x", "params,examples_seen", "--law",
                      "chinchilla", "--budget", "1e11", "--json", "--out", str(tmp_path / "fit")],
                     cli_env, tmp_path)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    (joint,) = json.loads(fitted.stdout)["fits"]
    assert joint["x"] == ["params", "examples_seen"] and joint["n_fit"] == 6
    assert joint["derived"]["N_opt@1e+11"] > 0 and joint["derived"]["D_opt@1e+11"] > 0
    report = run_cli(["scalinglab-report", str(sweep), "--bootstrap", "20"], cli_env, tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    page = (sweep / "report" / "report.html").read_text()
    assert "Joint law" in page and pd.notna(joint["params"]["alpha"])
