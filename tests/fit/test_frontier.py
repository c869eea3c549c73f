"""The compute frontier: Approach 1 over runs and learning curves, Approach 2 over IsoFLOP
budgets."""

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.fit.frontier import compute_frontier, curve_envelope, minimum_status
from tests.fit.tables import curves_table, isoflop_table


def test_frontier_envelope_and_isoflop_minimum():
    # Three IsoFLOP budgets, 5 sizes each; the loss is a parabola in log N around N* = C^0.5.
    rows = []
    for c in (1e12, 1e14, 1e16):
        n_star = c**0.5
        for n in n_star * np.array([0.1, 0.3, 1.0, 3.0, 10.0]):
            rows.append({"train_flops": c, "params": n,
                         "val_loss": 1 + 0.1 * np.log(n / n_star) ** 2 + 10 / np.log(c)})
    front = compute_frontier(pd.DataFrame(rows))
    assert len(front.isoflops) == 3
    for b in front.isoflops:
        assert b["N_opt"] == pytest.approx(b["C"] ** 0.5, rel=1e-6)
    assert front.isoflop_exponent == pytest.approx(0.5, rel=1e-6)
    losses = [e["loss"] for e in front.envelope]
    assert losses == sorted(losses, reverse=True)  # the envelope only goes down with compute


def test_isoflop_exponents_of_size_and_data_with_intervals():
    front = compute_frontier(isoflop_table(noise=0.003), bootstrap=200)
    assert front.n_bracketed == 3
    assert front.isoflop_exponent == pytest.approx(0.5, abs=0.02)
    assert front.isoflop_data_exponent == pytest.approx(0.5, abs=0.02)  # D = C / 6N
    lo, hi = front.isoflop_exponent_ci
    assert lo < front.isoflop_exponent < hi and hi - lo < 0.2
    for b in front.isoflops:
        assert b["D_opt"] == pytest.approx(b["C"] / (6 * b["N_opt"]), rel=0.01)


def test_a_minimum_at_the_edge_of_its_sizes_is_flagged_and_left_out():
    table = pd.concat([isoflop_table(), isoflop_table((1e18,), spread=(0.01, 0.03, 0.1, 0.3))])
    front = compute_frontier(table)
    edge = [b for b in front.isoflops if b["at_edge"]]
    assert [b["C"] for b in edge] == [pytest.approx(1e18 * 1.001)]
    assert front.n_bracketed == 3 and front.isoflop_exponent == pytest.approx(0.5, rel=1e-6)


def chinchilla_profiles(below=0.7, above=2.5, sizes=9):
    """IsoFLOP profiles of Hoffmann et al.'s law (D = C / 6N) spanning far past the minimum on
    one side, where a loss curve in log N is strongly asymmetric; the true N_opt is returned."""
    e, a, b, alpha, beta = 1.69, 406.4, 410.7, 0.34, 0.28
    g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))

    def truth(c):
        return g * (c / 6) ** (beta / (alpha + beta))

    rows = []
    for c in (1e18, 1e19, 1e20, 1e21):
        for n in truth(c) * np.logspace(-below, above, sizes):
            d = c / (6 * n)
            rows.append({"budget_flops": c, "train_flops": c, "params": n, "examples_seen": d,
                         "val_loss": e + a / n**alpha + b / d**beta})
    return pd.DataFrame(rows), truth


def test_the_local_estimator_holds_where_one_parabola_over_a_wide_span_moves_the_minimum():
    table, truth = chinchilla_profiles()
    local, whole = compute_frontier(table), compute_frontier(table, estimator="parabola")
    assert local.estimator == "local" and whole.estimator == "parabola"
    for lb, wb in zip(local.isoflops, whole.isoflops, strict=True):
        assert lb["estimator"] == "local" and not lb["poorly_determined"]
        local_err = abs(np.log10(lb["N_opt"] / truth(lb["C"])))
        assert local_err < 0.02 < abs(np.log10(wb["N_opt"] / truth(wb["C"])))
    assert local.isoflop_exponent == pytest.approx(0.28 / 0.62, abs=0.005)
    spline = compute_frontier(table, estimator="spline")  # exact on noiseless data
    for b in spline.isoflops:
        assert b["N_opt"] == pytest.approx(truth(b["C"]), rel=0.02)
        assert len(b["fitted"]["N"]) == len(b["fitted"]["loss"]) == 60


def test_the_local_window_centres_on_the_lowest_mean_over_seeds():
    table, truth = chinchilla_profiles()
    budget = table[table["budget_flops"] == 1e20]
    seeds = pd.concat([budget, budget], ignore_index=True)
    far = seeds["params"] == seeds["params"].max()  # one seed's freak low at the far end
    seeds.loc[far[far].index[0], "val_loss"] *= 0.5
    seeds.loc[far[far].index[1], "val_loss"] *= 1.6  # the mean there stays high
    (b,) = compute_frontier(seeds).isoflops
    assert abs(np.log10(b["N_opt"] / truth(b["C"]))) < 0.05 and not b["at_edge"]


def test_a_minimum_that_moves_without_one_size_is_flagged_and_left_out():
    table, _ = chinchilla_profiles(below=1.0, above=1.0, sizes=7)
    rng = np.random.default_rng(3)
    noisy = table.assign(val_loss=table["val_loss"] * np.exp(rng.normal(0, 0.03, len(table))))
    front = compute_frontier(noisy)
    flagged = [b for b in front.isoflops if b["poorly_determined"]]
    assert flagged and front.n_bracketed == sum(
        not b["at_edge"] and not b["poorly_determined"] for b in front.isoflops)
    assert not any(b["poorly_determined"] for b in compute_frontier(table).isoflops)
    with pytest.raises(ValueError, match="estimator must be one of"):
        compute_frontier(table, estimator="cubic")


def test_a_flagged_budget_stays_out_of_the_bootstrap_interval_too():
    table, _ = chinchilla_profiles()
    largest = table["budget_flops"] == table["budget_flops"].max()
    rng = np.random.default_rng(1)  # the largest budget alone: noisy enough to be flagged
    noise = np.exp(rng.normal(0, 0.05, int(largest.sum())))
    table.loc[largest, "val_loss"] *= noise
    front = compute_frontier(table, bootstrap=50)
    assert [b["poorly_determined"] for b in front.isoflops] == [False, False, False, True]
    assert minimum_status(front.isoflops[-1]) == "no: moves >2x without one size"
    assert [minimum_status(b) for b in front.isoflops[:3]] == ["yes"] * 3
    # the same interval as without that budget at all: it is resampled last, so the draws for
    # the others are the same
    alone = compute_frontier(table[~largest], bootstrap=50)
    assert front.isoflop_exponent == alone.isoflop_exponent
    assert front.isoflop_exponent_ci == alone.isoflop_exponent_ci


def test_approach_1_over_learning_curves():
    curves = curves_table()
    env = curve_envelope(curves)
    losses = [e["loss"] for e in env["envelope"]]
    assert losses == sorted(losses, reverse=True) and len(losses) > 3
    # each envelope point is the lowest loss of any curve at that compute or less
    for e in env["envelope"]:
        assert e["loss"] == curves.loc[curves["train_flops"] <= e["C"], "val_loss"].min()
    assert env["n_points"] == 21 and env["n_runs"] == 3
    assert env["n_before_end"] == sum(e["progress"] < 1 for e in env["envelope"])
    assert env["a"] > 0 and env["b"] > 0 and "biased" in env["note"]
    finals = curves[curves["progress"] == 1]
    assert compute_frontier(finals, curves=curves).curves == env


@pytest.mark.slow
def test_an_isoflop_sweep_gives_a_frontier_from_the_cli(tmp_path, cli_env):
    """experiment=isoflop, shrunk: 2 budgets x 3 sizes, then `scalinglab-fit --frontier`."""
    from tests.helpers import run_cli

    sweep = tmp_path / "sweep"
    # module.lr=0.01: at this LR the shrunk grid brackets both budgets' minima
    grid = run_cli(["scalinglab-train", "-m", "experiment=isoflop", "budget.flops=3e8,1e9",
                    "model.target_params=300,1000,3000", "data.num_samples=5000", "module.lr=0.01",
                    f"hydra.sweep.dir={sweep}"],
                   cli_env, tmp_path)
    assert grid.returncode == 0, grid.stderr[-2000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/run.json")]
    assert len(runs) == 6
    for r in runs:  # each job's compute lands within half a step of its budget
        step = 3 * r["flops_per_example"] * 128
        assert abs(r["train_flops"] - r["budget_flops"]) <= step / 2
    out = run_cli(["scalinglab-fit", str(sweep), "--frontier", "--bootstrap", "20", "--json"],
                  cli_env, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    front = json.loads(out.stdout)["frontier"]
    assert [b["C"] for b in front["isoflops"]] == pytest.approx([3e8, 1e9], rel=0.01)
    assert all("N_opt" in b and "D_opt" in b and "at_edge" in b for b in front["isoflops"])
    # Approach 1 over every job's learning curve: 8 log-spaced points (or fewer, for a job of
    # few steps) and the end
    exported = run_cli(["scalinglab-export", str(sweep), "--curves", "-o",
                        str(tmp_path / "curves.csv")], cli_env, tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves["job"].nunique() == 6 and len(curves) == front["curves"]["n_points"]
    assert sorted(curves.groupby("job")["step"].max()) == sorted(r["steps"] for r in runs)
    assert front["curves"]["n_runs"] == 6 and front["curves"]["envelope"]
