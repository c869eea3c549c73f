"""Runs as one table: a sweep's records and curves collected, tables in every format, the
export command."""

import pandas as pd
import pytest

from scalinglab.records.io import CURVE_NAME, write_curve, write_record
from scalinglab.records.schema import RunRecord
from scalinglab.records.tables import (
    SourceError,
    collect,
    collect_curves,
    load_table,
    main,
    override_columns,
    save_table,
)


def test_collect_and_load_table_formats(tmp_path):
    for i, params in enumerate([100, 1000]):
        write_record(tmp_path / "sweep" / str(i),
                             RunRecord(status="completed", params=params,
                                       val_loss=1.0 / (i + 1), config={"a": 1}))
    table = collect(tmp_path / "sweep")
    assert list(table["params"]) == [100, 1000]
    assert "config" not in table.columns and "path" in table.columns
    for suffix in (".csv", ".parquet", ".jsonl"):
        out = save_table(table, tmp_path / f"runs{suffix}")
        back = load_table(out)
        pd.testing.assert_series_equal(back["params"], table["params"], check_dtype=False)


@pytest.mark.parametrize("make,match", [
    (lambda p: p / "missing.csv", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no run.json"),
    (lambda p: (p / "t.xlsx").write_text("x") and p / "t.xlsx", "unknown table format"),
])
def test_load_table_errors(tmp_path, make, match):
    with pytest.raises(SourceError, match=match):
        load_table(make(tmp_path))


def test_export_cli_writes_csv(tmp_path, capsys):
    write_record(tmp_path / "s" / "0", RunRecord(status="completed", params=5))
    main([str(tmp_path / "s"), "-o", str(tmp_path / "runs.csv")])
    assert pd.read_csv(tmp_path / "runs.csv")["params"].tolist() == [5]
    assert "wrote 1 runs" in capsys.readouterr().out


def write_curves(sweep, sizes=(100, 1000)):
    """Jobs with records and learning curves, as train/run.py writes them."""
    for i, params in enumerate(sizes):
        job = sweep / f"job{i}"
        rows = [{"step": s, "progress": s / 8, "examples_seen": 32 * s, "train_flops": params * s,
                 "val_loss": 2.0 / (s * params) ** 0.1} for s in (1, 2, 4, 8)]
        write_curve(job, rows)
        write_record(job, RunRecord(status="completed", job=f"job{i}", params=params,
                                            seed=0, val_loss=rows[-1]["val_loss"]))


def test_curves_are_collected_with_their_jobs_size(tmp_path):
    write_curves(tmp_path / "sweep")
    (tmp_path / "sweep" / "nocurve").mkdir()  # a job that failed before training: no curve
    write_record(tmp_path / "sweep" / "nocurve", RunRecord(status="failed"))
    curves = collect_curves(tmp_path / "sweep")
    assert len(curves) == 8 and curves["job"].tolist() == ["job0"] * 4 + ["job1"] * 4
    assert curves.groupby("job")["params"].first().tolist() == [100, 1000]
    assert curves["step"].tolist() == [1, 2, 4, 8] * 2
    header = (tmp_path / "sweep" / "job0" / CURVE_NAME).read_text().splitlines()[0]
    assert header.split(",")[:3] == ["step", "progress", "epoch"]  # every column, always


def test_export_cli_curves(tmp_path, capsys):
    write_curves(tmp_path / "sweep")
    main([str(tmp_path / "sweep"), "--curves", "-o", str(tmp_path / "c.parquet")])
    assert len(pd.read_parquet(tmp_path / "c.parquet")) == 8
    assert "wrote 8 curve points of 2 runs" in capsys.readouterr().out
    for source in (tmp_path / "c.parquet", tmp_path / "empty"):  # not a sweep; no curves
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(SystemExit) as exc:
            main([str(source), "--curves"])
        assert exc.value.code == 2
        assert "curve.csv" in capsys.readouterr().err


def test_what_a_sweep_overrode_becomes_columns_named_by_their_path(tmp_path):
    for i, (lr, par) in enumerate([(0.01, "sp"), (0.02, "mup")]):
        write_record(tmp_path / "sweep" / str(i), RunRecord(
            status="completed", params=10, seed=0,
            overrides={"module.lr": lr, "model.parametrization": par, "seed": 0}))
    table = collect(tmp_path / "sweep")
    assert table["module.lr"].tolist() == [0.01, 0.02]
    assert table["model.parametrization"].tolist() == ["sp", "mup"]
    assert "overrides" not in table.columns and list(table.columns).count("seed") == 1
    assert override_columns(table) == ["module.lr", "model.parametrization"]
