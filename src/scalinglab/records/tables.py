"""Runs as one tidy table, from any source: a sweep directory (its `run.json` records), a CSV /
Parquet / JSONL file, an offline `wandb/` directory or the W&B API; and `scalinglab-export`,
which writes that table. A table tool: no torch, no Lightning."""

import argparse
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from scalinglab import exits
from scalinglab.files import atomic_write
from scalinglab.records import wandb as tracking
from scalinglab.records.io import CURVE_NAME, RECORD_NAME, read_record
from scalinglab.records.schema import CURVE_KEYS, FIELDS, NESTED


class SourceError(ValueError):
    """A table source cannot be read: the message says which and why."""


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


READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
           ".jsonl": lambda p: pd.read_json(p, lines=True),
           ".ndjson": lambda p: pd.read_json(p, lines=True), ".json": pd.read_json}


def load_table(source: str | os.PathLike, group: str | None = None) -> pd.DataFrame:
    """Runs as a table, from a sweep directory (its run.json records), a CSV / Parquet / JSONL
    file, an offline `wandb/` directory, or `wandb:ENTITY/PROJECT[/GROUP]` (the W&B API)."""
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
    if path.suffix not in READERS:
        raise SourceError(f"{source}: unknown table format {path.suffix!r} "
                          f"(use {', '.join(READERS)} or a sweep directory)")
    try:
        return READERS[path.suffix](path)
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
        sys.exit(exits.CONFIG)
    save_table(table, output)
    if args.curves:
        print(f"wrote {len(table)} curve points of {table['path'].nunique()} runs to {output}")
        return
    counts = table["status"].value_counts().to_dict() if "status" in table else {}
    print(f"wrote {len(table)} runs {counts} to {output}")


if __name__ == "__main__":
    main()
