import json
import math

import pandas as pd
import pytest

from scalinglab import records
from scalinglab.records import RunRecord


def test_write_record_is_atomic_and_json_clean(tmp_path):
    record = RunRecord(status="diverged", val_loss=math.nan, config={"x": math.inf})
    path = records.write_record(tmp_path / "job", record)
    assert path.name == "run.json"
    data = json.loads(path.read_text())  # strict JSON: no NaN literals
    assert data["val_loss"] is None and data["config"]["x"] is None
    assert set(data) == set(RunRecord().to_dict())  # every key of the schema, always
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temp file left


class Unwritable:
    def __str__(self):
        raise TypeError("cannot serialise")


def test_failed_write_keeps_previous_record(tmp_path):
    records.write_record(tmp_path, RunRecord(status="completed", params=10))
    with pytest.raises(TypeError):
        records.write_record(tmp_path, RunRecord(status="completed", config={"x": Unwritable()}))
    assert records.read_record(tmp_path / "run.json")["params"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_collect_and_load_table_formats(tmp_path):
    for i, params in enumerate([100, 1000]):
        records.write_record(tmp_path / "sweep" / str(i),
                             RunRecord(status="completed", params=params,
                                       val_loss=1.0 / (i + 1), config={"a": 1}))
    table = records.collect(tmp_path / "sweep")
    assert list(table["params"]) == [100, 1000]
    assert "config" not in table.columns and "path" in table.columns
    for suffix in (".csv", ".parquet", ".jsonl"):
        out = records.save_table(table, tmp_path / f"runs{suffix}")
        back = records.load_table(out)
        pd.testing.assert_series_equal(back["params"], table["params"], check_dtype=False)


@pytest.mark.parametrize("make,match", [
    (lambda p: p / "missing.csv", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no run.json"),
    (lambda p: (p / "t.xlsx").write_text("x") and p / "t.xlsx", "unknown table format"),
])
def test_load_table_errors(tmp_path, make, match):
    with pytest.raises(records.SourceError, match=match):
        records.load_table(make(tmp_path))


def test_export_cli_writes_csv(tmp_path, capsys):
    records.write_record(tmp_path / "s" / "0", RunRecord(status="completed", params=5))
    records.io.main([str(tmp_path / "s"), "-o", str(tmp_path / "runs.csv")])
    assert pd.read_csv(tmp_path / "runs.csv")["params"].tolist() == [5]
    assert "wrote 1 runs" in capsys.readouterr().out


def test_every_run_json_key_has_one_source():
    """The W&B summary and config keys and the sweep table's columns all name record fields."""
    from scalinglab.records.schema import COLUMNS, CONFIG_KEYS, SUMMARY_KEYS

    fields = set(RunRecord().to_dict())
    assert set(SUMMARY_KEYS) <= fields and set(CONFIG_KEYS) <= fields and set(COLUMNS) <= fields
    assert len(set(SUMMARY_KEYS.values())) == len(SUMMARY_KEYS)  # no two share a W&B key


def write_curves(sweep, sizes=(100, 1000)):
    """Jobs with records and learning curves, as train/run.py writes them."""
    for i, params in enumerate(sizes):
        job = sweep / f"job{i}"
        rows = [{"step": s, "progress": s / 8, "examples_seen": 32 * s, "train_flops": params * s,
                 "val_loss": 2.0 / (s * params) ** 0.1} for s in (1, 2, 4, 8)]
        records.write_curve(job, rows)
        records.write_record(job, RunRecord(status="completed", job=f"job{i}", params=params,
                                            seed=0, val_loss=rows[-1]["val_loss"]))


def test_curves_are_collected_with_their_jobs_size(tmp_path):
    write_curves(tmp_path / "sweep")
    (tmp_path / "sweep" / "nocurve").mkdir()  # a job that failed before training: no curve
    records.write_record(tmp_path / "sweep" / "nocurve", RunRecord(status="failed"))
    curves = records.collect_curves(tmp_path / "sweep")
    assert len(curves) == 8 and curves["job"].tolist() == ["job0"] * 4 + ["job1"] * 4
    assert curves.groupby("job")["params"].first().tolist() == [100, 1000]
    assert curves["step"].tolist() == [1, 2, 4, 8] * 2
    header = (tmp_path / "sweep" / "job0" / records.CURVE_NAME).read_text().splitlines()[0]
    assert header.split(",")[:3] == ["step", "progress", "epoch"]  # every column, always


def test_export_cli_curves(tmp_path, capsys):
    write_curves(tmp_path / "sweep")
    records.io.main([str(tmp_path / "sweep"), "--curves", "-o", str(tmp_path / "c.parquet")])
    assert len(pd.read_parquet(tmp_path / "c.parquet")) == 8
    assert "wrote 8 curve points of 2 runs" in capsys.readouterr().out
    for source in (tmp_path / "c.parquet", tmp_path / "empty"):  # not a sweep; no curves
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(SystemExit) as exc:
            records.io.main([str(source), "--curves"])
        assert exc.value.code == 2
        assert "curve.csv" in capsys.readouterr().err


def test_what_a_sweep_overrode_becomes_columns_named_by_their_path(tmp_path):
    for i, (lr, par) in enumerate([(0.01, "sp"), (0.02, "mup")]):
        records.write_record(tmp_path / "sweep" / str(i), RunRecord(
            status="completed", params=10, seed=0,
            overrides={"module.lr": lr, "model.parametrization": par, "seed": 0}))
    table = records.collect(tmp_path / "sweep")
    assert table["module.lr"].tolist() == [0.01, 0.02]
    assert table["model.parametrization"].tolist() == ["sp", "mup"]
    assert "overrides" not in table.columns and list(table.columns).count("seed") == 1
    assert records.io.override_columns(table) == ["module.lr", "model.parametrization"]
