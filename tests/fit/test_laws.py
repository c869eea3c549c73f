"""Each law recovers known parameters from noisy synthetic data; derived quantities invert."""

import numpy as np
import pandas as pd
import pytest

from scalinglab.fit import FitError, fit
from scalinglab.fit.derived import allocation
from scalinglab.fit.laws import LAWS, Law


def table_for(law: str, params: dict, x: np.ndarray, noise: float, seed: int = 0,
              cols=("params",)) -> pd.DataFrame:
    spec = LAWS[law]
    rng = np.random.default_rng(seed)
    y = np.exp(spec.log_predict(spec.theta(params), np.log(np.atleast_2d(x))))
    y = y * np.exp(rng.normal(0, noise, y.size))
    return pd.DataFrame({**dict(zip(cols, np.atleast_2d(x), strict=True)), "val_loss": y})


# Tolerances: with 0.5% log-noise on 15-64 points the exponents are determined to a few
# percent; coefficients multiply x^-alpha, so they move more (errors compensate).
def test_power_recovers():
    truth = {"A": 12.0, "alpha": 0.3}
    f = fit(table_for("power", truth, np.geomspace(1e2, 1e6, 15), 0.005), law="power").fits[0]
    assert f.params["alpha"] == pytest.approx(0.3, rel=0.03)
    assert f.params["A"] == pytest.approx(12.0, rel=0.15)


def test_power_offset_recovers():
    truth = {"E": 0.8, "A": 20.0, "alpha": 0.5}
    f = fit(table_for("power_offset", truth, np.geomspace(1e2, 1e6, 15), 0.005)).fits[0]
    assert f.params["E"] == pytest.approx(0.8, rel=0.02)
    assert f.params["alpha"] == pytest.approx(0.5, rel=0.05)
    assert f.params["A"] == pytest.approx(20.0, rel=0.25)


def test_chinchilla_recovers():
    truth = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    n, d = (g.ravel() for g in np.meshgrid(np.geomspace(1e6, 1e10, 8), np.geomspace(1e8, 1e12, 8)))
    table = table_for("chinchilla", truth, np.stack([n, d]), 0.005, cols=("N", "D"))
    f = fit(table, x="N,D", law="chinchilla").fits[0]
    assert f.params["E"] == pytest.approx(1.69, rel=0.02)
    assert f.params["alpha"] == pytest.approx(0.34, rel=0.05)
    assert f.params["beta"] == pytest.approx(0.28, rel=0.05)


def test_bnsl_recovers_the_break():
    truth = {"E": 0.1, "A": 5.0, "d": 1e4, "f": 0.3, "alpha": 0.1, "c": 0.5}
    x = np.geomspace(1e2, 1e7, 30)
    f = fit(table_for("bnsl", truth, x, 0.003), law="bnsl").fits[0]
    # slopes before and after the break, and where it sits (within a factor of 2)
    assert f.params["alpha"] == pytest.approx(0.1, abs=0.03)
    assert f.params["alpha"] + f.params["c"] == pytest.approx(0.6, abs=0.08)
    assert 0.5 < f.params["d"] / 1e4 < 2
    assert f.rmse_log_fit < 0.005


def test_auto_prefers_the_simpler_law_on_pure_power_data_and_says_why():
    table = table_for("power", {"A": 5.0, "alpha": 0.4}, np.geomspace(1e2, 1e6, 15), 0.01)
    f = fit(table, law="auto").fits[0]
    assert f.law in ("power", "power_offset")
    assert f.selection["criterion"] == "rmse_log_inner" and f.selection["chosen"] == f.law
    assert set(f.selection["scores"]) == {"power", "power_offset", "bnsl"}
    assert "held-out rows were not used" in f.selection["reason"]


def test_auto_chooses_by_extrapolating_inside_the_fitted_rows():
    table = table_for("power_offset", {"E": 1.0, "A": 30.0, "alpha": 0.6},
                      np.geomspace(1e2, 1e6, 16), 0.005)
    f = fit(table, law="auto", holdout_largest=4).fits[0]
    assert f.selection["criterion"] == "rmse_log_inner"
    assert "3 largest fitted params" in f.selection["reason"]  # 12 fitted sizes // 4
    assert f.selection["scores"][f.law] == min(f.selection["scores"].values())
    assert f.selection["scores"]["power_offset"] < f.selection["scores"]["power"]
    assert f.n_holdout == 4 and f.rmse_log_holdout is not None  # reported, not used


def test_held_out_values_change_neither_the_choice_nor_the_parameters():
    table = table_for("power_offset", {"E": 1.0, "A": 30.0, "alpha": 0.6},
                      np.geomspace(1e2, 1e6, 16), 0.005)
    before = fit(table, law="auto", holdout_largest=4).fits[0]
    perturbed = table.copy()
    largest = perturbed["params"] >= np.sort(perturbed["params"].unique())[-4]
    perturbed.loc[largest, "val_loss"] *= [0.3, 3.0, 0.5, 2.0]  # wildly different holdout
    after = fit(perturbed, law="auto", holdout_largest=4).fits[0]
    assert after.law == before.law and after.selection["scores"] == before.selection["scores"]
    assert after.params == before.params
    assert after.rmse_log_holdout != before.rmse_log_holdout  # the report does see them


def test_groups_fitted_in_two_processes_give_the_same_report():
    x = np.geomspace(1e2, 1e6, 12)
    table = pd.concat([
        table_for("power_offset", {"E": 1.0, "A": 30.0, "alpha": 0.6}, x, 0.01).assign(g="a"),
        table_for("bnsl", {"E": 0.5, "A": 20.0, "d": 1e4, "f": 0.5, "alpha": 0.2, "c": 0.4}, x,
                  0.01, seed=1).assign(g="b")])
    one = fit(table, law="auto", group_by="g", bootstrap=20)
    two = fit(table, law="auto", group_by="g", bootstrap=20, workers=2)
    assert [f.to_dict() for f in two.fits] == [f.to_dict() for f in one.fits]
    with pytest.raises(FitError, match="--workers must be >= 1"):
        fit(table, workers=0)


def test_auto_falls_back_to_aicc_when_too_few_sizes_to_refit():
    # 4 sizes: without the largest, 3 are left, and power_offset's 3 parameters need 4
    table = table_for("power", {"A": 5.0, "alpha": 0.4}, np.geomspace(1e2, 1e6, 4), 0.01)
    f = fit(table, law="auto").fits[0]
    assert f.selection["criterion"] == "aicc" and set(f.selection["scores"]) == {
        "power", "power_offset"}


def test_target_round_trip_and_unreachable():
    truth = {"E": 0.8, "A": 20.0, "alpha": 0.5}
    table = table_for("power_offset", truth, np.geomspace(1e2, 1e6, 15), 0.0)
    f = fit(table, target=0.9).fits[0]
    x = f.derived["target_x"]
    assert f.predict(np.array([x]))[0] == pytest.approx(0.9, rel=1e-9)
    assert x == pytest.approx((20.0 / 0.1) ** 2, rel=1e-4)  # closed form: (A / (L - E))^(1/alpha)
    assert fit(table, target=0.8).fits[0].derived["target_x"] is None  # at E
    assert fit(table, target=0.5).fits[0].derived["target_x"] is None  # below E


def test_chinchilla_allocation_is_optimal_and_matches_closed_form():
    truth = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    n, d = (g.ravel() for g in np.meshgrid(np.geomspace(1e6, 1e10, 6), np.geomspace(1e8, 1e12, 6)))
    table = table_for("chinchilla", truth, np.stack([n, d]), 0.0, cols=("N", "D"))
    f = fit(table, x="N,D", law="chinchilla", budgets=[1e21], target=2.2).fits[0]
    assert f.derived["a"] == pytest.approx(0.28 / 0.62, rel=1e-4)
    assert f.derived["b"] == pytest.approx(0.34 / 0.62, rel=1e-4)
    n_opt, d_opt = f.derived["N_opt@1e+21"], f.derived["D_opt@1e+21"]
    assert 6 * n_opt * d_opt == pytest.approx(1e21, rel=1e-9)
    loss = lambda n: f.predict(np.array([[n], [1e21 / 6 / n]]))[0]  # noqa: E731
    assert loss(n_opt) < loss(n_opt * 1.2) and loss(n_opt) < loss(n_opt / 1.2)
    # the target compute, allocated optimally, reaches the target loss
    c = f.derived["target_x"]
    assert allocation(f.params, c, 6.0)["loss"] == pytest.approx(2.2, rel=1e-8)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_each_laws_jacobian_matches_central_differences(name):
    law = LAWS[name]
    rng = np.random.default_rng(1)
    logx = np.log(np.geomspace(1e3, 1e7, 15))[None].repeat(law.n_x, 0)
    logx[-1] = rng.permutation(logx[-1])
    theta = rng.uniform(0.2, 0.8, law.n_params) * np.array([hi - lo for lo, hi in law.bounds()]
                                                           ).clip(max=2)
    thetas = [theta]
    if name == "bnsl":  # also a break inside the data, where every term of the bend matters
        thetas.append(law.theta({"E": 0.5, "A": 20.0, "d": 1e5, "f": 0.5, "alpha": 0.2,
                                 "c": 0.4}))
    for i, theta in enumerate(thetas):
        pred, jac = law.predict_and_jac(theta, logx)
        ref_pred, ref_jac = Law.predict_and_jac(law, theta, logx)  # finite differences
        assert pred == pytest.approx(ref_pred, rel=1e-12)
        assert jac == pytest.approx(ref_jac, rel=1e-5, abs=1e-7)
        if i:  # the break inside the data: every parameter moves the prediction
            assert np.abs(jac).max(axis=0).min() > 1e-3


def test_every_law_has_consistent_parameter_names():
    for law in LAWS.values():
        theta = np.linspace(0.1, 0.5, law.n_params)
        assert np.allclose(law.theta(law.report(theta)), theta)
