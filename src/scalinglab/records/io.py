"""Run records on disk: `run.json` per job, collected into one tidy table; and the one
atomic-write helper every file the project writes goes through.

A table tool: it imports neither torch nor Lightning, so collecting and fitting start fast.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pandas as pd

from scalinglab.records.schema import CURVE_COLUMNS, CURVE_KEYS, FIELDS, NESTED, RunRecord

RECORD_NAME = "run.json"
CURVE_NAME = "curve.csv"


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None] | str | bytes) -> Path:
    """Write `path` all or nothing: a temp file in the same directory, fsync, rename. `write`
    is the text, the bytes, or a function that writes to the open binary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if isinstance(write, str) else "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _finite_or_none(value):
    """JSON has no NaN/inf: a diverged run's non-finite metrics are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(path: str | os.PathLike, doc) -> Path:
    """Strict JSON (non-finite numbers as null), written atomically."""
    return atomic_write(path, json.dumps(_finite_or_none(doc), indent=2, allow_nan=False,
                                         default=str))


def write_record(directory: str | os.PathLike, record: RunRecord) -> Path:
    """The one writer of `run.json`: `record` into `directory`, atomically."""
    return write_json(Path(directory) / RECORD_NAME, record.to_dict())


def write_curve(directory: str | os.PathLike, rows: list[dict]) -> Path:
    """The one writer of `curve.csv`: the job's learning curve into `directory`, atomically."""
    table = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return atomic_write(Path(directory) / CURVE_NAME, table.to_csv(index=False))


def read_record(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


def collect(directory: str | os.PathLike) -> pd.DataFrame:
    """Every `run.json` under `directory` as one row each, with its folder in column `path`.
    What the sweep varied comes too: each key the job's overrides set (e.g. `module.lr`) is a
    column named by its override path."""
    rows = []
    for path in sorted(Path(directory).rglob(RECORD_NAME)):
        record = read_record(path)
        row = {k: v for k, v in record.items() if k not in NESTED}
        row.update({k: v for k, v in (record.get("overrides") or {}).items() if k not in row})
        row["path"] = str(path.parent)
        rows.append(row)
    return pd.DataFrame(rows)


def override_columns(table: pd.DataFrame) -> list[str]:
    """The columns a sweep's overrides added: neither record fields nor `path`."""
    return [c for c in table.columns if c not in FIELDS and c != "path"]


def collect_curves(directory: str | os.PathLike) -> pd.DataFrame:
    """Every job's `curve.csv` under `directory` as one table: a row per evaluation, with the
    job's size, data and budget from its `run.json`, and its folder in column `path`."""
    parts = []
    for path in sorted(Path(directory).rglob(CURVE_NAME)):
        record_path = path.parent / RECORD_NAME
        if not record_path.exists():
            continue
        curve = pd.read_csv(path)
        record = read_record(record_path)
        for key in reversed(CURVE_KEYS):
            curve.insert(0, key, record.get(key))
        curve["path"] = str(path.parent)
        parts.append(curve)
    if not parts:
        raise SourceError(f"{directory}: no {CURVE_NAME} (with its {RECORD_NAME}) found here")
    return pd.concat(parts, ignore_index=True)


def save_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Save a table as CSV, Parquet or JSONL (by suffix), atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        return atomic_write(path, lambda f: table.to_parquet(f, index=False))
    if path.suffix in (".jsonl", ".ndjson"):
        return atomic_write(path, table.to_json(orient="records", lines=True))
    return atomic_write(path, table.to_csv(index=False))


class SourceError(ValueError):
    """A table source cannot be read: the message says which and why."""


def _from_wandb(rows: list[dict], skipped: dict, source: str) -> pd.DataFrame:
    if skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
        warnings.warn(f"{source}: kept {len(rows)} finished run(s), skipped "
                      f"{sum(skipped.values())} ({reasons})", stacklevel=3)
    if not rows:
        raise SourceError(f"{source}: no finished W&B training runs")
    table = pd.DataFrame(rows)
    table["status"] = table["status"].fillna("completed")
    return table


def load_table(source: str | os.PathLike, group: str | None = None) -> pd.DataFrame:
    """Runs as a table, from a sweep directory (its run.json records), a CSV / Parquet / JSONL
    file, an offline `wandb/` directory, or `wandb:ENTITY/PROJECT[/GROUP]` (the W&B API)."""
    from scalinglab.records import wandb as tracking

    text = str(source)
    if text.startswith("wandb:"):
        parts = text.removeprefix("wandb:").strip("/").split("/")
        if len(parts) not in (2, 3):
            raise SourceError(f"{source}: expected wandb:ENTITY/PROJECT[/GROUP]")
        try:
            rows, skipped = tracking.read_api("/".join(parts[:2]), group or
                                              (parts[2] if len(parts) == 3 else None))
        except Exception as e:  # no network, no key, no such project
            raise SourceError(f"{source}: cannot read from the W&B API: {e}") from None
        return _from_wandb(rows, skipped, text)
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such file or directory")
    if path.is_dir():
        table = collect(path)
        if table.empty and any(path.rglob("offline-run-*")):
            return _from_wandb(*tracking.read_offline(path), text)
        if table.empty:
            raise SourceError(f"{source}: no {RECORD_NAME} (or W&B offline run) found here")
        return table
    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
               ".jsonl": lambda p: pd.read_json(p, lines=True),
               ".ndjson": lambda p: pd.read_json(p, lines=True), ".json": pd.read_json}
    if path.suffix not in readers:
        raise SourceError(f"{source}: unknown table format {path.suffix!r} "
                          f"(use {', '.join(readers)} or a sweep directory)")
    try:
        return readers[path.suffix](path)
    except Exception as e:
        raise SourceError(f"{source}: cannot read as {path.suffix}: {e}") from None


def main(argv: list[str] | None = None) -> None:
    """`scalinglab-export SOURCE [--group G] [-o runs.csv]`: runs into one tidy table."""
    p = argparse.ArgumentParser(prog="scalinglab-export", description=main.__doc__)
    p.add_argument("source", help="a sweep directory (run.json records), an offline wandb/ "
                   "directory, or wandb:ENTITY/PROJECT[/GROUP]")
    p.add_argument("--group", default=None, help="W&B group (study) to keep")
    p.add_argument("--curves", action="store_true",
                   help=f"the jobs' learning curves ({CURVE_NAME}), a row per evaluation, "
                   "from a sweep directory")
    p.add_argument("-o", "--output", default=None,
                   help="CSV, .parquet or .jsonl path (default: runs.csv, or curves.csv)")
    args = p.parse_args(argv)
    output = args.output or ("curves.csv" if args.curves else "runs.csv")
    warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
    try:
        if args.curves and not Path(args.source).is_dir():
            raise SourceError(f"{args.source}: --curves reads {CURVE_NAME} files from a sweep "
                              "or run directory")
        table = (collect_curves(args.source) if args.curves else
                 load_table(args.source, group=args.group))
    except SourceError as e:
        print(f"scalinglab-export: error: {e}", file=sys.stderr)
        sys.exit(2)
    save_table(table, output)
    if args.curves:
        print(f"wrote {len(table)} curve points of {table['path'].nunique()} runs to {output}")
        return
    counts = table["status"].value_counts().to_dict() if "status" in table else {}
    print(f"wrote {len(table)} runs {counts} to {output}")


if __name__ == "__main__":
    main()
