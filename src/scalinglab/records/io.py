"""One job's files: `run.json` (its record) and `curve.csv` (its learning curve), each with one
writer. A table tool: no torch, no Lightning."""

import os
from pathlib import Path

import pandas as pd

from scalinglab.files import atomic_write, read_json, write_json
from scalinglab.records.schema import CURVE_COLUMNS, RunRecord

RECORD_NAME = "run.json"
CURVE_NAME = "curve.csv"


def write_record(directory: str | os.PathLike, record: RunRecord) -> Path:
    """The one writer of `run.json`: `record` into `directory`, atomically."""
    return write_json(Path(directory) / RECORD_NAME, record.to_dict())


def read_record(path: str | os.PathLike) -> dict:
    """A `run.json` as the dict it was written from."""
    return read_json(path)


def completed_record(directory: str | os.PathLike, identity: str) -> dict | None:
    """The record in `directory` if its job completed with this identity: the job is done,
    and a re-run of the sweep skips it."""
    path = Path(directory) / RECORD_NAME
    if not path.exists():
        return None
    record = read_record(path)
    return record if record.get("status") == "completed" and record.get(
        "identity") == identity else None


def write_curve(directory: str | os.PathLike, rows: list[dict]) -> Path:
    """The one writer of `curve.csv`: the job's learning curve into `directory`, atomically."""
    table = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return atomic_write(Path(directory) / CURVE_NAME, table.to_csv(index=False))
