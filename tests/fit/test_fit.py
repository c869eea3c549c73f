import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.fit import fit
from scalinglab.fit.cli import main as fit_main
from scalinglab.fit.laws import LAWS


def power_offset_table(E=0.5, A=30.0, alpha=0.4, noise=0.01, seed=0, n=12, groups=("a",)):
    rng = np.random.default_rng(seed)
    rows = []
    for g in groups:
        x = np.geomspace(1e3, 1e7, n)
        y = (E + A * x**-alpha) * np.exp(rng.normal(0, noise, n))
        rows += [{"family": g, "params": xi, "val_loss": yi, "status": "completed"}
                 for xi, yi in zip(x, y, strict=True)]
    return pd.DataFrame(rows)


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


def write(table: pd.DataFrame, path) -> str:
    table.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("case,args,message", [
    ("missing file", ["nope.csv"], "no such file"),
    ("missing column", ["{t}", "--y", "loss"], "column(s) ['loss'] not in the table"),
    ("too few points", ["{small}"], "needs at least 4"),
    ("non-positive y", ["{neg}"], "non-positive values"),
    ("no completed runs", ["{failed}"], "no completed runs"),
    ("wrong arity", ["{t}", "--law", "chinchilla"], "takes 2 x column"),
    ("bad query", ["{t}", "--holdout", "params >>> 3"], "not a valid query"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, args, message):
    good = power_offset_table()
    paths = {
        "t": write(good, tmp_path / "t.csv"),
        "small": write(good.head(3), tmp_path / "small.csv"),
        "neg": write(good.assign(val_loss=-good["val_loss"]), tmp_path / "neg.csv"),
        "failed": write(good.assign(status="failed"), tmp_path / "failed.csv"),
    }
    argv = [a.format(**paths) for a in args]
    with pytest.raises(SystemExit) as exc:
        fit_main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("scalinglab-fit: error:")
    assert message in err[-1]


def test_cli_json_and_outputs(tmp_path, capsys):
    src = write(power_offset_table(groups=("mlp", "cnn")), tmp_path / "runs.csv")
    fit_main([src, "--json", "--holdout-largest", "2", "--out", str(tmp_path / "fit")])
    doc = json.loads(capsys.readouterr().out)
    assert {f["group"]["family"] for f in doc["fits"]} == {"mlp", "cnn"}
    first = doc["fits"][0]
    assert first["law"] == "power_offset" and set(first["params"]) == {"E", "A", "alpha"}
    assert first["n_holdout"] == 2 and first["rmse_log_holdout"] is not None
    assert json.loads((tmp_path / "fit" / "fit.json").read_text()) == doc
    png = tmp_path / "fit" / "fit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (tmp_path / "fit" / "fit.svg").exists()


def test_every_law_has_consistent_parameter_names():
    for law in LAWS.values():
        theta = np.linspace(0.1, 0.5, law.n_params)
        assert np.allclose(law.theta(law.report(theta)), theta)


def test_frontier_envelope_and_isoflop_minimum():
    from scalinglab.fit.frontier import compute_frontier

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


def isoflop_table(budgets=(1e12, 1e14, 1e16), spread=(0.1, 0.3, 1.0, 3.0, 10.0), noise=0.0):
    """Runs of a budget sweep: N_opt = C^0.5 exactly, D = C / (6 N), a parabola in log N."""
    rng = np.random.default_rng(0)
    rows = []
    for c in budgets:
        n_star = c**0.5
        for n in n_star * np.array(spread):
            loss = (1 + 0.1 * np.log(n / n_star) ** 2 + 10 / np.log(c)) * np.exp(
                rng.normal(0, noise))
            rows.append({"budget_flops": c, "train_flops": c * 1.001, "params": n,
                         "examples_seen": c / (6 * n), "val_loss": loss})
    return pd.DataFrame(rows)


def test_isoflop_exponents_of_size_and_data_with_intervals():
    from scalinglab.fit.frontier import compute_frontier

    front = compute_frontier(isoflop_table(noise=0.003), bootstrap=200)
    assert front.n_bracketed == 3
    assert front.isoflop_exponent == pytest.approx(0.5, abs=0.02)
    assert front.isoflop_data_exponent == pytest.approx(0.5, abs=0.02)  # D = C / 6N
    lo, hi = front.isoflop_exponent_ci
    assert lo < front.isoflop_exponent < hi and hi - lo < 0.2
    for b in front.isoflops:
        assert b["D_opt"] == pytest.approx(b["C"] / (6 * b["N_opt"]), rel=0.01)


def test_a_minimum_at_the_edge_of_its_sizes_is_flagged_and_left_out():
    from scalinglab.fit.frontier import compute_frontier

    table = pd.concat([isoflop_table(), isoflop_table((1e18,), spread=(0.01, 0.03, 0.1, 0.3))])
    front = compute_frontier(table)
    edge = [b for b in front.isoflops if b["at_edge"]]
    assert [b["C"] for b in edge] == [pytest.approx(1e18 * 1.001)]
    assert front.n_bracketed == 3 and front.isoflop_exponent == pytest.approx(0.5, rel=1e-6)


def test_cli_bootstrap_target_budget_and_frontier(tmp_path, capsys):
    n, d = (g.ravel() for g in np.meshgrid(np.geomspace(1e6, 1e9, 5), np.geomspace(1e8, 1e11, 5)))
    y = 1.7 + 400 * n**-0.34 + 400 * d**-0.28
    table = pd.DataFrame({"model params": n, "tokens": d, "loss": y, "train_flops": 6 * n * d})
    src = write(table, tmp_path / "runs.csv")
    fit_main([src, "--x", "model params,tokens", "--y", "loss", "--law", "chinchilla",
              "--bootstrap", "20", "--budget", "1e20,1e22", "--target", "2.0", "--frontier",
              "--compute", "train_flops", "--json", "--out", str(tmp_path / "out")])
    doc = json.loads(capsys.readouterr().out)
    f = doc["fits"][0]
    expected = {"a", "b", "G", "N_opt@1e+20", "D_opt@1e+22", "target_x", "target_N"}
    assert set(f["derived"]) >= expected
    assert set(f["ci"]) >= {"E", "alpha", "a", "N_opt@1e+20", "target_x"}
    assert "frontier" in doc and doc["frontier"]["envelope"]
    for name in ("fit", "residuals", "frontier"):
        assert (tmp_path / "out" / f"{name}.png").stat().st_size > 5000
        assert (tmp_path / "out" / f"{name}.svg").exists()


def curves_table(sizes=(1e3, 1e4, 1e5), steps=(1, 3, 10, 30, 100, 300, 1000)):
    """Learning curves of three sizes: compute 6 N D per step, a loss falling in N and D, and
    every point before the end of its schedule."""
    rows = []
    for n in sizes:
        for s in steps:
            d = 100 * s
            rows.append({"job": f"n{n:g}", "params": n, "step": s, "progress": s / steps[-1],
                         "examples_seen": d, "train_flops": 6 * n * d,
                         "val_loss": 1 + 30 * n**-0.3 + 30 * d**-0.3})
    return pd.DataFrame(rows)


def test_approach_1_over_learning_curves():
    from scalinglab.fit.frontier import compute_frontier, curve_envelope

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


def test_cli_frontier_reads_the_sweeps_curves(tmp_path, capsys):
    from scalinglab.records import RunRecord, write_curve, write_record

    curves = curves_table()
    for job, rows in curves.groupby("job"):
        final = rows.iloc[-1]
        write_curve(tmp_path / "sweep" / job, rows.to_dict("records"))
        write_record(tmp_path / "sweep" / job, RunRecord(
            status="completed", job=job, params=int(final["params"]),
            train_flops=final["train_flops"], val_loss=final["val_loss"]))
    fit_main([str(tmp_path / "sweep"), "--frontier", "--json", "--law", "power"])
    doc = json.loads(capsys.readouterr().out)["frontier"]
    assert doc["curves"]["n_points"] == 21 and doc["curves"]["n_runs"] == 3
    # or from an exported curves table, for a source that is not a sweep directory
    table = write(pd.DataFrame([r for r in curves.to_dict("records") if r["progress"] == 1]),
                  tmp_path / "runs.csv")
    write(curves, tmp_path / "curves.csv")
    fit_main([table, "--frontier", "--curves", str(tmp_path / "curves.csv"), "--law",
              "power"])
    assert "learning curves): N ~ C^" in capsys.readouterr().out


def test_cli_prints_unreachable_target(tmp_path, capsys):
    src = write(power_offset_table(), tmp_path / "t.csv")
    fit_main([src, "--target", "0.3"])  # below E = 0.5
    assert "unreachable" in capsys.readouterr().out


@pytest.mark.parametrize("case,extra,message", [
    ("constant x", "constant", "is constant"),
    ("holdout leaves too few", "holdout", "after holding out"),
    ("unknown law", "law", "invalid choice"),
])
def test_cli_more_bad_input(tmp_path, capsys, case, extra, message):
    good = power_offset_table()
    if extra == "constant":
        args = [write(good.assign(params=1000.0), tmp_path / "c.csv")]
    elif extra == "holdout":
        args = [write(good, tmp_path / "t.csv"), "--holdout-largest", "10"]
    else:
        args = [write(good, tmp_path / "t.csv"), "--law", "cubic"]
    with pytest.raises(SystemExit) as exc:
        fit_main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_nan_rows_are_dropped_with_a_count():
    table = power_offset_table()
    table.loc[[1, 2], "val_loss"] = np.nan
    with pytest.warns(UserWarning, match="dropping 2 row"):
        f = fit(table).fits[0]
    assert f.n_fit == len(table) - 2


@pytest.mark.slow
def test_an_isoflop_sweep_gives_a_frontier_from_the_cli(tmp_path, cli_env):
    """experiment=isoflop, shrunk: 2 budgets x 3 sizes, then `scalinglab-fit --frontier`."""
    from tests.helpers import run_cli

    sweep = tmp_path / "sweep"
    grid = run_cli(["scalinglab-train", "-m", "experiment=isoflop", "budget.flops=3e8,1e9",
                    "model.target_params=300,1000,3000", f"hydra.sweep.dir={sweep}"],
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


LRS = tuple(2.0 ** np.arange(-10, -3))  # 2^-10 .. 2^-4


def lr_sweep(sizes=(1e3, 1e4, 1e5), lrs=LRS, k=0.5, seeds=2):
    """Loss = a law in N plus a parabola in log lr around lr*(N) = 0.3 N^-k (so lr* halves
    every 4x in N for k=0.5), under sp; under mup the optimum stays at 2^-7."""
    rng = np.random.default_rng(0)
    rows = []
    for par in ("sp", "mup"):
        for n in sizes:
            best = 0.3 * n**-k if par == "sp" else 2.0**-7
            for lr in lrs:
                for s in range(seeds):
                    loss = 1 + 50 * n**-0.4 + 0.05 * np.log(lr / best) ** 2 + rng.normal(0, 1e-4)
                    rows.append({"status": "completed", "family": "mlp", "params": n,
                                 "model.width": int(n / 100), "model.parametrization": par,
                                 "module.lr": lr, "seed": s, "val_loss": loss})
    return pd.DataFrame(rows)


def test_best_over_keeps_each_sizes_best_lr_and_fits_lr_opt():
    from scalinglab.fit.tuned import best_over, lr_scaling

    table = lr_sweep()
    best, choices, varying = best_over(table, ["module.lr"], ["params"], "val_loss", ["family"])
    assert varying == ["model.parametrization"]  # model.width follows the size: not a setting
    assert len(best) == 6 and len(choices) == 6  # 3 sizes x 2 parametrizations, seeds averaged
    mup = [c for c in choices if c["model.parametrization"] == "mup"]
    assert {c["module.lr"] for c in mup} == {2.0**-7}
    sp = sorted((c for c in choices if c["model.parametrization"] == "sp"),
                key=lambda c: c["params"])
    # 0.3 N^-0.5 on the grid 2^-10..2^-4: the nearest grid points, the last at the grid's edge
    assert [c["module.lr"] for c in sp] == [2.0**-7, 2.0**-8, 2.0**-10]
    assert [c["at_edge"]["module.lr"] for c in sp] == [False, False, True]
    scaling = {s["group"]["model.parametrization"]: s
               for s in lr_scaling(choices, "module.lr", "params",
                                   ["family", "model.parametrization"])}
    assert scaling["mup"]["k"] == pytest.approx(0.0, abs=1e-9)
    assert scaling["sp"]["n"] == 2 and scaling["sp"]["n_at_edge"] == 1  # too few to fit


def test_cli_best_over_fits_the_tuned_envelope(tmp_path, capsys):
    sizes = (1e3, 3e3, 1e4, 3e4, 1e5)
    src = write(lr_sweep(sizes=sizes, lrs=2.0 ** np.arange(-14, -3, 0.25)), tmp_path / "runs.csv")
    fit_main([src, "--best-over", "module.lr", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert {f["label"] for f in doc["fits"]} == {"mlp/sp", "mlp/mup"}
    assert all(f["n_fit"] == 5 for f in doc["fits"])  # one row per size: the tuned envelope
    for f in doc["fits"]:  # the envelope removes the LR's penalty: the law comes back
        assert f["params"]["alpha"] == pytest.approx(0.4, abs=0.05)
    scaling = {s["group"]["model.parametrization"]: s for s in doc["best_over"]["scaling"]}
    assert scaling["sp"]["k"] == pytest.approx(0.5, abs=0.05)
    lo, hi = scaling["sp"]["ci"]
    assert lo < scaling["sp"]["k"] < hi
    fit_main([src, "--best-over", "module.lr"])
    assert "module.lr_opt ~ params^-k" in capsys.readouterr().out


def test_best_over_scores_its_winners_on_a_test_split_it_never_chose_by(tmp_path, capsys):
    """Runs with data.val_from_train: val_loss chooses, test_loss comes beside; runs without
    one validate on the test split, and choosing by it warns."""
    import warnings

    from scalinglab.fit.tuned import best_over

    table = lr_sweep(sizes=(1e3, 3e3, 1e4, 3e4, 1e5))
    with pytest.warns(UserWarning, match="held-out split, which then also scores"):
        best_over(table, ["module.lr"], ["params"], "val_loss", ["family"])
    # the test loss is lowest at another LR: it must not move the choice
    table["test_loss"] = table["val_loss"] + 0.1 * np.log(table["module.lr"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, choices, _ = best_over(table, ["module.lr"], ["params"], "val_loss", ["family"])
    mup = [c for c in choices if c["model.parametrization"] == "mup"]
    assert {c["module.lr"] for c in mup} == {2.0**-7}
    rows = table[(table["model.parametrization"] == "mup") & (table["module.lr"] == 2.0**-7)]
    expected = rows.groupby("params")["test_loss"].mean()
    assert [c["test_loss"] for c in sorted(mup, key=lambda c: c["params"])] == pytest.approx(
        list(expected))
    fit_main([write(table, tmp_path / "runs.csv"), "--best-over", "module.lr"])
    header = next(line for line in capsys.readouterr().out.splitlines() if "module.lr" in line
                  and "val_loss" in line and "test_loss" in line)
    assert header.index("val_loss") < header.index("test_loss")


def test_cli_best_over_an_unknown_column_is_exit_2(tmp_path, capsys):
    src = write(lr_sweep(), tmp_path / "runs.csv")
    with pytest.raises(SystemExit) as exc:
        fit_main([src, "--best-over", "module.learning_rate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no column module.learning_rate" in err and "module.lr" in err
