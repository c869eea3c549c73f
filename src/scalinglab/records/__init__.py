"""Run records and the runs table: the schema (schema.py), one job's files (io.py), tables from
any source (tables.py), W&B's runs read back (wandb.py). Table tools: nothing here imports torch
or Lightning (tests/test_imports.py checks it)."""
