"""scalinglab-report on tables whose laws are known, and on bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.records import write_json
from scalinglab.report import build, main, power_fit
from tests.helpers import run_cli


def study_table(train_sizes=(1000,)) -> pd.DataFrame:
    """Two families at 6 sizes: val_loss = 0.5 + 20 N^-0.5 (+ a data term), time = 1e-3 N^0.5."""
    rows = []
    for family in ("mlp", "cnn"):
        for d in train_sizes:
            for n in np.geomspace(1e3, 1e5, 6):
                val = 0.5 + 20 * n**-0.5 + (0 if len(train_sizes) == 1 else 50 * d**-0.5)
                rows.append({"status": "completed", "family": family, "params": n,
                             "train_size": d, "examples_seen": 10 * d, "val_loss": val,
                             "train_loss": val - 1e-5 * n**0.5, "val_acc": 1 - val / 3,
                             "time_s": 1e-3 * n**0.5, "param_bytes": 4 * n,
                             "peak_mem_bytes": 1e8 + n, "train_flops": 6 * n * 10 * d})
    return pd.DataFrame(rows)


def test_power_fit_recovers_the_exponent():
    n = pd.Series(np.geomspace(1e3, 1e6, 8))
    f = power_fit(n, 3 * n**0.7)
    assert f.k == pytest.approx(0.7) and f.c == pytest.approx(3) and f(1e7) == pytest.approx(
        3 * 1e7**0.7)
    assert power_fit(n[:2], n[:2]) is None  # too few points to fit


def test_report_answers_the_four_questions(tmp_path):
    page = build(study_table(), tmp_path / "report", "test", target_loss=0.6, bootstrap=50)
    text = page.read_text()
    for heading in ("Performance vs size", "Generalisation vs size", "Resources vs size",
                    "The stopping rule"):
        assert heading in text
    for image in ("performance_loss.png", "performance_acc.png", "generalisation.png",
                  "resources_time_s.png", "resources_param_bytes.png"):
        assert f'src="{image}"' in text and (tmp_path / "report" / image).stat().st_size > 0
    # alpha 0.5 recovered; time grows as N^0.5 and parameter bytes as N^1
    assert "<td>0.5</td>" in text and "<td>1</td>" in text
    # 0.5 + 20 N^-0.5 = 0.6 at N = 40000; and the train-val gap grows with size
    assert "<td>4e+04</td>" in text and "grows with size" in text
    # the cost to train it: 1e-3 * 40000^0.5 = 0.2 s
    assert "<td>0.2</td>" in text


def test_report_fits_the_joint_law_when_data_varies(tmp_path):
    page = build(study_table(train_sizes=(1000, 4000, 16000)), tmp_path, "test", bootstrap=0)
    text = page.read_text()
    assert "Joint law L(N, D)" in text and "train_size=16000" in text


def test_cli_writes_into_the_sweep_and_rejects_empty_sweeps(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    for i, row in study_table().iterrows():
        write_json(sweep / f"job{i}" / "run.json", json.loads(row.to_json()))
    main([str(sweep), "--bootstrap", "20"])
    assert (sweep / "report" / "report.html").exists()
    (tmp_path / "empty").mkdir()
    result = run_cli(["scalinglab-report", str(tmp_path / "empty")], cli_env, tmp_path)
    assert result.returncode == 2 and "error" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_model_x_data_grid_gives_a_joint_law_and_a_report(tmp_path, cli_env):
    """The user's path: a (shrunk) model x data grid, the joint fit, the report."""
    sweep = tmp_path / "sweep"
    grid = run_cli(["scalinglab-train", "-m", "experiment=mlp_data_grid",
                    "data.num_samples=5000", "model.target_params=1000,3000,10000",
                    "data.train_size=1000,4000", "trainer.max_epochs=3",
                    f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert grid.returncode == 0, grid.stderr[-2000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/run.json")]
    assert sorted({r["train_size"] for r in runs}) == [1000, 4000] and len(runs) == 6
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
    assert "Joint law" in (sweep / "report" / "report.html").read_text()


def test_report_draws_the_compute_frontier_of_a_budget_sweep(tmp_path):
    rows = []
    for c in (1e12, 1e14, 1e16):
        for n in c**0.5 * np.array([0.1, 0.3, 1.0, 3.0, 10.0]):
            loss = 1 + 0.1 * np.log(n / c**0.5) ** 2 + 10 / np.log(c)
            rows.append({"status": "completed", "family": "mlp", "params": n, "budget_flops": c,
                         "train_flops": c, "examples_seen": c / (6 * n), "val_loss": loss,
                         "train_loss": loss, "val_acc": 0.5, "time_s": 1.0})
    text = build(pd.DataFrame(rows), tmp_path, "isoflop", bootstrap=20).read_text()
    assert "The compute frontier" in text and 'src="frontier.png"' in text
    assert "a = 0.5 [" in text  # N_opt = C^0.5 exactly, with its interval
    assert (tmp_path / "frontier.png").stat().st_size > 0



def test_report_adds_approach_1_over_the_learning_curves(tmp_path):
    from tests.fit.test_fit import curves_table

    rows = [{"status": "completed", "family": "mlp", "params": n, "budget_flops": c,
             "train_flops": c, "examples_seen": c / (6 * n), "time_s": 1.0, "val_acc": 0.5,
             "val_loss": 1 + 0.1 * np.log(n / c**0.5) ** 2 + 10 / np.log(c),
             "train_loss": 1.0}
            for c in (1e12, 1e14, 1e16) for n in c**0.5 * np.array([0.1, 1.0, 10.0])]
    curves = curves_table().assign(status="completed")
    text = build(pd.DataFrame(rows), tmp_path, "isoflop", bootstrap=0, curves=curves).read_text()
    assert "Approach 1 over the learning curves (21 points of 3 runs)" in text
    assert "points are before their run's schedule ended" in text


def test_report_shows_the_best_lr_per_size_when_the_sweep_varied_it(tmp_path):
    from tests.fit.test_fit import lr_sweep

    table = lr_sweep(sizes=(1e3, 3e3, 1e4, 3e4, 1e5), lrs=2.0 ** np.arange(-9, -5))
    table = table.assign(val_acc=0.5, train_loss=table["val_loss"], time_s=1.0)
    text = build(table, tmp_path, "lr sweep", bootstrap=0).read_text()
    assert "Best LR vs size" in text and (tmp_path / "best_lr.png").stat().st_size > 0
    assert "chose an LR at an edge of the swept grid" in text  # sp's small and large sizes
    assert "alpha on the tuned envelope" in text
    assert "both chose each size's LR (by val_loss) and scores it" in text  # no test split
    scored = build(table.assign(test_loss=table["val_loss"] + 0.01), tmp_path / "with-test",
                   "lr sweep", bootstrap=0).read_text()
    assert "test_loss (not chosen by)" in scored and "both chose" not in scored
