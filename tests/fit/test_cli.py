"""`scalinglab-fit`, as a user calls it: the table printed and written, bad input as one line
and exit 2."""

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.fit.cli import main as fit_main
from tests.fit.tables import curves_table, isoflop_table, lr_sweep, power_offset_table, write


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
    fit_main([src, "--json", "--holdout-largest", "2", "--workers", "2"])
    assert json.loads(capsys.readouterr().out) == doc  # the groups in 2 processes: the same
    png = tmp_path / "fit" / "fit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (tmp_path / "fit" / "fit.svg").exists()


def test_cli_fits_the_test_split_beside_validation_with_the_laws_val_chose(tmp_path, capsys):
    table = power_offset_table(groups=("mlp", "cnn"))
    table["test_loss"] = 0.1 + table["val_loss"]  # E one tenth higher on the test split
    src = write(table, tmp_path / "runs.csv")
    fit_main([src, "--json", "--law", "auto"])
    doc = json.loads(capsys.readouterr().out)
    val = {f["label"]: f for f in doc["fits"]}
    test = {f["label"]: f for f in doc["test"]["fits"]}
    assert set(test) == set(val) == {"mlp", "cnn"}
    for label, f in test.items():
        assert f["y"] == "test_loss" and f["law"] == val[label]["law"]  # chosen on val only
        assert f["selection"] is None and f["n_fit"] == val[label]["n_fit"]
    fit_main([src])
    out = capsys.readouterr().out
    assert "test_loss vs params" in out and "(nothing is chosen by it)" in out
    fit_main([str(write(power_offset_table(), tmp_path / "plain.csv")), "--json"])
    assert "test" not in json.loads(capsys.readouterr().out)  # no test_loss measured: no fit


def test_cli_bootstrap_target_budget_and_frontier(tmp_path, capsys):
    n, d = (g.ravel() for g in np.meshgrid(np.geomspace(1e6, 1e9, 5), np.geomspace(1e8, 1e11, 5)))
    y = 1.7 + 400 * n**-0.34 + 400 * d**-0.28
    table = pd.DataFrame({"model params": n, "tokens": d, "loss": y, "train_flops": 6 * n * d})
    src = write(table, tmp_path / "runs.csv")
    fit_main([src, "--x", "model params,tokens", "--y", "loss", "--law", "chinchilla",
              "--bootstrap", "10", "--budget", "1e20,1e22", "--target", "2.0", "--frontier",
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


def test_cli_frontier_reads_the_sweeps_curves(tmp_path, capsys):
    from scalinglab.records.io import write_curve, write_record
    from scalinglab.records.schema import RunRecord

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


def test_cli_frontier_reads_d_from_the_second_x_column(tmp_path, capsys):
    """A language model's data axis is tokens: `--x params,tokens_seen` puts D_opt in tokens,
    and the table prints tokens per parameter at each budget's minimum."""
    table = isoflop_table()
    table["tokens_seen"] = table["examples_seen"] * 64  # windows of 64 tokens
    src = write(table, tmp_path / "runs.csv")
    fit_main([src, "--frontier", "--x", "params,tokens_seen", "--law", "chinchilla", "--json"])
    doc = json.loads(capsys.readouterr().out)["frontier"]
    for b in doc["isoflops"]:  # D = C / (6 N) examples, 64 tokens each
        assert b["D_opt"] == pytest.approx(64 * b["C"] / (6 * b["N_opt"]), rel=0.01)
    assert doc["isoflop_data_exponent"] == pytest.approx(0.5, abs=0.01)
    fit_main([src, "--frontier", "--x", "params,tokens_seen", "--law", "chinchilla"])
    assert "D_opt / N_opt" in capsys.readouterr().out


def test_cli_frontier_reads_a_public_isoflop_collections_columns(tmp_path, capsys):
    """Laid out as published IsoFLOP collections are (tokens, params, budget, loss): the budget
    column groups the profiles, and a sweep's own budget_flops works as --compute too."""
    table = isoflop_table().rename(columns={"budget_flops": "budget", "val_loss": "loss"})
    table["tokens"] = table.pop("examples_seen")
    src = write(table[["tokens", "params", "budget", "loss"]], tmp_path / "isoflops.csv")
    fit_main([src, "--frontier", "--x", "params,tokens", "--y", "loss", "--compute", "budget",
              "--law", "chinchilla", "--json"])
    doc = json.loads(capsys.readouterr().out)["frontier"]
    assert [b["C"] for b in doc["isoflops"]] == pytest.approx([1e12, 1e14, 1e16])
    assert doc["isoflop_exponent"] == pytest.approx(0.5, abs=0.01)
    assert doc["isoflop_data_exponent"] == pytest.approx(0.5, abs=0.01)
    sweep = write(isoflop_table(), tmp_path / "runs.csv")
    fit_main([sweep, "--frontier", "--compute", "budget_flops", "--law", "power", "--json"])
    assert json.loads(capsys.readouterr().out)["frontier"]["isoflop_exponent"] == pytest.approx(
        0.5, abs=0.01)
    fit_main([sweep, "--frontier", "--isoflop-estimator", "spline", "--json"])
    doc = json.loads(capsys.readouterr().out)["frontier"]
    assert doc["estimator"] == "spline" and {b["estimator"] for b in doc["isoflops"]} == {
        "spline"}
    fit_main([sweep, "--frontier"])
    assert "by local" in capsys.readouterr().out  # the estimator is said in the table's title


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


def test_cli_best_over_an_unknown_column_is_exit_2(tmp_path, capsys):
    src = write(lr_sweep(), tmp_path / "runs.csv")
    with pytest.raises(SystemExit) as exc:
        fit_main([src, "--best-over", "module.learning_rate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no column module.learning_rate" in err and "module.lr" in err
