"""Run records (one schema, one writer), the runs table, and the W&B logger and readers.
Table tools: nothing here imports torch or Lightning."""

from scalinglab.records.io import (
    CURVE_NAME,
    RECORD_NAME,
    SourceError,
    atomic_write,
    collect,
    collect_curves,
    load_table,
    read_record,
    save_table,
    write_curve,
    write_json,
    write_record,
)
from scalinglab.records.schema import STATUSES, RunRecord

__all__ = ["CURVE_NAME", "RECORD_NAME", "STATUSES", "RunRecord", "SourceError", "atomic_write",
           "collect", "collect_curves", "load_table", "read_record", "save_table",
           "write_curve", "write_json", "write_record"]
