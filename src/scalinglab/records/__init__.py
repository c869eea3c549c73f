"""Run records (one schema, one writer), the runs table, and the W&B logger and readers.
Table tools: nothing here imports torch or Lightning."""

from scalinglab.records.io import (
    RECORD_NAME,
    SourceError,
    atomic_write,
    collect,
    load_table,
    read_record,
    save_table,
    write_json,
    write_record,
)
from scalinglab.records.schema import STATUSES, RunRecord

__all__ = ["RECORD_NAME", "STATUSES", "RunRecord", "SourceError", "atomic_write", "collect",
           "load_table", "read_record", "save_table", "write_json", "write_record"]
