"""The tuned envelope: each size at its best hyperparameters, chosen honestly."""

import numpy as np
import pytest

from scalinglab.fit.cli import main as fit_main
from scalinglab.fit.tuned import best_over, lr_scaling
from tests.fit.tables import lr_sweep, write


def test_best_over_keeps_each_sizes_best_lr_and_fits_lr_opt():
    table = lr_sweep()
    with pytest.warns(UserWarning, match="held-out split"):  # no test_loss column: it says so
        best, choices, varying = best_over(table, ["module.lr"], ["params"], "val_loss",
                                           ["family"])
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


def test_best_over_scores_its_winners_on_a_test_split_it_never_chose_by(tmp_path, capsys):
    """Runs with data.val_from_train: val_loss chooses, test_loss comes beside; runs without
    one validate on the test split, and choosing by it warns."""
    import warnings

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
