"""One job's files: run.json and curve.csv, each written atomically by its one writer."""

import json
import math
import os
import stat

import pytest

from scalinglab.records.io import completed_record, read_record, write_record
from scalinglab.records.schema import RunRecord


def test_write_record_is_atomic_and_json_clean(tmp_path):
    record = RunRecord(status="diverged", val_loss=math.nan, config={"x": math.inf})
    path = write_record(tmp_path / "job", record)
    assert path.name == "run.json"
    data = json.loads(path.read_text())  # strict JSON: no NaN literals
    assert data["val_loss"] is None and data["config"]["x"] is None
    assert set(data) == set(RunRecord().to_dict())  # every key of the schema, always
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temp file left


class Unwritable:
    def __str__(self):
        raise TypeError("cannot serialise")


def test_failed_write_keeps_previous_record(tmp_path):
    write_record(tmp_path, RunRecord(status="completed", params=10))
    with pytest.raises(TypeError):
        write_record(tmp_path, RunRecord(status="completed", config={"x": Unwritable()}))
    assert read_record(tmp_path / "run.json")["params"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_every_run_json_key_has_one_source():
    """The W&B summary and config keys and the sweep table's columns all name record fields."""
    from scalinglab.records.schema import COLUMNS, CONFIG_KEYS, SUMMARY_KEYS

    fields = set(RunRecord().to_dict())
    assert set(SUMMARY_KEYS) <= fields and set(CONFIG_KEYS) <= fields and set(COLUMNS) <= fields
    assert len(set(SUMMARY_KEYS.values())) == len(SUMMARY_KEYS)  # no two share a W&B key




def test_a_completed_record_with_the_same_identity_is_the_one_a_rerun_skips(tmp_path):
    assert completed_record(tmp_path, "abc") is None  # no record yet
    write_record(tmp_path, RunRecord(status="failed", identity="abc"))
    assert completed_record(tmp_path, "abc") is None  # it did not complete: run it again
    write_record(tmp_path, RunRecord(status="completed", identity="abc", params=7))
    assert completed_record(tmp_path, "abc")["params"] == 7
    assert completed_record(tmp_path, "other") is None  # another config in this directory


def test_written_files_get_the_umask_permissions_not_owner_only(tmp_path):
    """A study directory shared by a group stays readable: not mkstemp's 0600."""
    umask = os.umask(0)
    os.umask(umask)
    path = write_record(tmp_path, RunRecord(status="completed"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
