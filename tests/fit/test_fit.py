"""fit(): laws recovered per group, held-out rows, what is skipped and dropped, the default
groups."""

import numpy as np
import pandas as pd
import pytest

from scalinglab.fit import default_groups, fit
from tests.fit.tables import power_offset_table


def test_power_offset_recovers_known_parameters():
    # 1% multiplicative noise on 12 points over 4 decades: E, A, alpha within 5%/30%/10%
    report = fit(power_offset_table(), group_by="family")
    p = report.fits[0].params
    assert p["E"] == pytest.approx(0.5, rel=0.05)
    assert p["alpha"] == pytest.approx(0.4, rel=0.10)
    assert p["A"] == pytest.approx(30.0, rel=0.30)
    assert report.fits[0].rmse_log_fit < 0.02


def test_noiseless_fit_is_exact_and_objective_near_zero():
    report = fit(power_offset_table(noise=0.0))
    f = report.fits[0]
    assert f.params["alpha"] == pytest.approx(0.4, rel=1e-5)
    assert f.params["E"] == pytest.approx(0.5, rel=1e-5)
    assert f.objective < 1e-12


def test_power_law_recovers_growth_exponent():
    x = np.geomspace(1e3, 1e6, 10)
    table = pd.DataFrame({"params": x, "time_s": 2e-4 * x**0.8})
    f = fit(table, y="time_s", law="power").fits[0]
    assert f.params["alpha"] == pytest.approx(-0.8, rel=1e-4)  # L = A x^-alpha, so alpha < 0


def test_groups_fit_separately():
    table = power_offset_table(groups=("mlp", "cnn"))
    report = fit(table, group_by="family")
    assert [f.group for f in report.fits] == [{"family": "cnn"}, {"family": "mlp"}]


def test_holdout_rmse_matches_hand_computation():
    table = power_offset_table(noise=0.02, seed=3)
    report = fit(table, holdout_largest=3)
    f = report.fits[0]
    assert (f.n_fit, f.n_holdout) == (9, 3)
    held = table.nlargest(3, "params")
    pred = f.params["E"] + f.params["A"] * held["params"] ** -f.params["alpha"]
    by_hand = np.sqrt(np.mean((np.log(held["val_loss"]) - np.log(pred)) ** 2))
    assert f.rmse_log_holdout == pytest.approx(by_hand, rel=1e-9)
    # a query holdout selects the same rows
    g = fit(table, holdout=f"params > {table['params'].nlargest(4).iloc[-1]}").fits[0]
    assert g.rmse_log_holdout == pytest.approx(by_hand, rel=1e-9)


def test_holdout_largest_counts_distinct_x_values():
    table = pd.concat([power_offset_table(seed=s) for s in range(2)])  # 2 seeds per size
    f = fit(table, holdout_largest=2).fits[0]
    assert (f.n_fit, f.n_holdout) == (20, 4)


def test_chinchilla_recovers_joint_law():
    rng = np.random.default_rng(1)
    n, d = np.meshgrid(np.geomspace(1e4, 1e7, 8), np.geomspace(1e5, 1e8, 8))
    n, d = n.ravel(), d.ravel()
    y = (1.7 + 400 * n**-0.34 + 410 * d**-0.28) * np.exp(rng.normal(0, 0.002, n.size))
    table = pd.DataFrame({"params": n, "examples_seen": d, "val_loss": y})
    f = fit(table, x="params,examples_seen", law="chinchilla").fits[0]
    assert f.params["E"] == pytest.approx(1.7, rel=0.03)
    assert f.params["alpha"] == pytest.approx(0.34, rel=0.1)
    assert f.params["beta"] == pytest.approx(0.28, rel=0.1)


def test_failed_runs_are_skipped_with_a_warning():
    table = power_offset_table()
    table.loc[0, "status"] = "diverged"
    table.loc[0, "val_loss"] = np.nan
    with pytest.warns(UserWarning, match="skipping 1 run"):
        report = fit(table)
    assert report.fits[0].n_fit == len(table) - 1


def test_nan_rows_are_dropped_with_a_count():
    table = power_offset_table()
    table.loc[[1, 2], "val_loss"] = np.nan
    with pytest.warns(UserWarning, match="dropping 2 row"):
        f = fit(table).fits[0]
    assert f.n_fit == len(table) - 2


def test_default_groups_are_the_family_and_each_data_size_for_a_law_in_n():
    table = pd.DataFrame({"family": ["mlp", "cnn"] * 2, "train_size": [1000, 1000, 4000, 4000],
                          "params": [1, 2, 3, 4], "examples_seen": [5, 6, 7, 8]})
    assert default_groups(table, "params") == ["family", "train_size"]
    assert default_groups(table, "params,examples_seen") == ["family"]  # D is on the x axis
    assert default_groups(table[table["train_size"] == 1000], "params") == ["family"]
    assert default_groups(table.drop(columns="family"), ["params"]) == ["train_size"]
