"""The report's sections, on tables whose laws are known: each number checked on its own."""

import numpy as np
import pandas as pd
import pytest

from scalinglab.fit import default_groups
from scalinglab.report import sections
from tests.fit.tables import curves_table, lr_sweep


def study_table(train_sizes=(1000,)) -> pd.DataFrame:
    """Two families at 6 sizes: val_loss = 0.5 + 20 N^-0.5 for the MLP and 0.2 + 40 N^-0.7 for
    the CNN (+ a data term), time = 1e-3 N^0.5, parameter bytes = 4 N."""
    laws = {"mlp": (0.5, 20.0, 0.5), "cnn": (0.2, 40.0, 0.7)}
    rows = []
    for family, (e, a, alpha) in laws.items():
        for d in train_sizes:
            for n in np.geomspace(1e3, 1e5, 6):
                val = e + a * n**-alpha + (0 if len(train_sizes) == 1 else 50 * d**-0.5)
                rows.append({"status": "completed", "family": family, "params": n,
                             "train_size": d, "examples_seen": 10 * d, "val_loss": val,
                             "train_loss": val - 1e-5 * n**0.5, "val_acc": 1 - val / 3,
                             "time_s": 1e-3 * n**0.5, "param_bytes": 4 * n,
                             "peak_mem_bytes": 1e8 + n, "state_bytes": 16 * n + 64,
                             "train_flops": 6 * n * 10 * d})
    return pd.DataFrame(rows)


def test_performance_shows_the_test_split_beside_validation():
    table = study_table()
    table["test_loss"] = table["val_loss"] + 0.05  # the same alpha, E higher by 0.05
    section = sections.performance(table, ["family"], "val_loss")
    fits = section["fits"].set_index(["group", "on"])
    assert section["test_y"] == "test_loss" and len(fits) == 4
    assert fits.loc[("family=mlp", "test_loss"), "E"] == pytest.approx(0.55, rel=1e-3)
    assert fits.loc[("family=mlp", "test_loss"), "alpha"] == pytest.approx(0.5, rel=1e-3)
    assert sections.performance(study_table(), ["family"], "val_loss")["test_y"] is None


def test_performance_recovers_each_familys_law():
    table = study_table()
    fits = sections.performance(table, ["family"], "val_loss", bootstrap=20)["fits"]
    fits = fits.set_index("group")
    assert (fits["on"] == "val_loss").all()
    # noiseless: every resample of whole sizes fits the same alpha
    assert [fits.loc["family=mlp", "alpha low"], fits.loc["family=mlp", "alpha high"]] == \
        pytest.approx([0.5, 0.5], rel=1e-3)
    assert fits.loc["family=mlp", "alpha"] == pytest.approx(0.5, rel=1e-3)
    assert fits.loc["family=mlp", "E"] == pytest.approx(0.5, rel=1e-3)
    assert fits.loc["family=cnn", "alpha"] == pytest.approx(0.7, rel=1e-3)
    assert fits.loc["family=cnn", "E"] == pytest.approx(0.2, rel=1e-3)
    assert fits.loc["family=cnn", "A"] == pytest.approx(40.0, rel=1e-2)


def test_resources_fit_each_exponent_separately():
    rows = sections.resources(study_table(), ["family"])["rows"]
    k = rows.set_index(["resource", "group"])["k (∝ N^k)"]
    assert k["wall time (s)", "family=mlp"] == pytest.approx(0.5)
    assert k["parameter bytes", "family=cnn"] == pytest.approx(1.0)
    assert k["training FLOPs", "family=mlp"] == pytest.approx(1.0)
    assert 0 < k["peak memory (bytes)", "family=mlp"] < 0.01  # the runtime, mostly
    assert k["training state (bytes)", "family=mlp"] == pytest.approx(1.0, abs=0.01)


def test_the_stopping_rule_predicts_the_size_and_its_cost():
    table = study_table()
    costs = sections.resources(table, ["family"])["fits"]
    rule = sections.stopping_rule(table, "val_loss", 0.6, None, 50, 0.95, costs, ["family"])
    mlp = rule["rows"].set_index("group").loc["family=mlp"]
    # 0.5 + 20 N^-0.5 = 0.6 at N = 40000, and training it takes 1e-3 * 40000^0.5 = 0.2 s
    assert mlp["params needed"] == pytest.approx(4e4, rel=1e-3)
    # noiseless: every resample fits the same law
    assert [mlp["interval low"], mlp["interval high"]] == pytest.approx([4e4, 4e4], rel=1e-3)
    assert mlp["predicted time (s)"] == pytest.approx(0.2, rel=1e-3)
    assert mlp["predicted training FLOPs"] == pytest.approx(6 * 4e4 * 1e4, rel=1e-3)
    cnn = rule["rows"].set_index("group").loc["family=cnn"]
    assert cnn["params needed"] == pytest.approx((40 / 0.4) ** (1 / 0.7), rel=1e-3)
    below = sections.stopping_rule(table, "val_loss", 0.3, None, 0, 0.95, costs, ["family"])
    unreachable = below["rows"].set_index("group").loc["family=mlp"]  # below its E = 0.5
    assert pd.isna(unreachable["params needed"]) and "unreachable" in unreachable["note"]


def test_generalisation_says_how_the_gap_moves_with_size():
    rows = sections.generalisation(study_table(), ["family"])["rows"].set_index("group")
    assert rows.loc["family=mlp", "gap at the smallest size"] == pytest.approx(1e-5 * 1e3**0.5)
    assert rows.loc["family=mlp", "gap at the largest size"] == pytest.approx(1e-5 * 1e5**0.5)
    assert rows.loc["family=mlp", ""] == "grows with size"


def test_a_model_by_data_grid_is_grouped_as_scalinglab_fit_groups_it():
    table = study_table(train_sizes=(1000, 4000, 16000))
    keys = default_groups(table, "params")
    assert keys == ["family", "train_size"]  # a law in N per (family, D), as the CLI fits it
    fits = sections.performance(table, keys, "val_loss")["fits"].set_index("group")
    assert len(fits) == 6
    assert fits["alpha"]["family=mlp, train_size=16000"] == pytest.approx(0.5, rel=1e-3)
    joint = sections.joint(table, "val_loss")["fits"].set_index("group")
    assert list(joint.index) == ["cnn", "mlp"]  # the joint law: D is an axis, not a group
    assert sections.joint(study_table(), "val_loss") is None  # one training-set size


def test_the_frontier_of_a_budget_sweep_recovers_its_exponent():
    rows = []
    for c in (1e12, 1e14, 1e16):
        for n in c**0.5 * np.array([0.1, 0.3, 1.0, 3.0, 10.0]):
            loss = 1 + 0.1 * np.log(n / c**0.5) ** 2 + 10 / np.log(c)
            rows.append({"family": "mlp", "params": n, "budget_flops": c, "train_flops": c,
                         "examples_seen": c / (6 * n), "val_loss": loss})
    front = sections.frontier(pd.DataFrame(rows), "val_loss", 20, 0.9, None)
    assert front["a"] == pytest.approx(0.5, rel=1e-6) and front["b"] == pytest.approx(0.5)
    assert front["a_ci"][0] <= 0.5 <= front["a_ci"][1]
    assert list(front["budgets"]["counted"]) == ["yes"] * 3
    curves = curves_table().assign(status="completed")
    with_curves = sections.frontier(pd.DataFrame(rows), "val_loss", 0, 0.9, curves)
    assert with_curves["curves"]["n_points"] == 21 and with_curves["curves"]["n_runs"] == 3
    assert sections.frontier(study_table().drop(columns="train_flops"), "val_loss", 0, 0.9,
                             None) is None


def test_the_best_lr_per_size_its_edges_and_the_test_split():
    table = lr_sweep(sizes=(1e3, 3e3, 1e4, 3e4, 1e5), lrs=2.0 ** np.arange(-9, -5))
    with pytest.warns(UserWarning, match="held-out split"):
        best = sections.best_lr(table, ["family"], "val_loss")
    assert best["varying"] == ["model.parametrization"] and best["chose_on_test"]
    assert best["edges"] > 0  # sp's smallest and largest sizes want LRs past the grid
    mup = [s for s in best["scaling"] if "mup" in s["group"]][0]
    assert mup["k"] == pytest.approx(0.0, abs=1e-9)  # one LR at every size under muP
    envelope = best["envelope"].set_index("group")["alpha on the tuned envelope"]
    assert envelope["mlp/mup"] == pytest.approx(0.4, abs=0.05)
    scored = sections.best_lr(table.assign(test_loss=table["val_loss"] + 0.01), ["family"],
                              "val_loss")
    assert not scored["chose_on_test"] and "test_loss (not chosen by)" in scored["rows"]
    assert sections.best_lr(study_table(), ["family"], "val_loss") is None  # one LR
