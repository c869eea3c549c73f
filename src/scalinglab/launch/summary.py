"""The end of a multirun: collect every job's record, print a summary, set the exit code
(scalinglab/exits.py: OK, PARTIAL, FAILED or CONFIG). Written here, in a Hydra callback,
because Hydra calls `on_multirun_end` after the last job on every launcher.
"""

import logging
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from scalinglab import exits
from scalinglab.files import write_json
from scalinglab.launch.grid import count_jobs
from scalinglab.records.schema import COLUMNS, STATUSES
from scalinglab.records.tables import collect, save_table

log = logging.getLogger("scalinglab")


def _fmt(value) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _num(value) -> float:
    """A sort key for a possibly missing number (a failed job may have no params)."""
    return float(value) if isinstance(value, int | float) and value == value else float("inf")


def summarize(sweep_dir: str | Path) -> dict:
    """Collect the sweep's records into `runs.csv` and `sweep_summary.json`; return the summary."""
    sweep_dir = Path(sweep_dir)
    table = collect(sweep_dir)
    jobs = [] if table.empty else table.to_dict("records")
    jobs.sort(key=lambda j: (str(j.get("family")), _num(j.get("params")), _num(j.get("seed")),
                             str(j["path"])))
    counts = {s: sum(j.get("status") == s for j in jobs) for s in STATUSES}
    summary = {"sweep_dir": str(sweep_dir), "n_jobs": len(jobs), "counts": counts,
               "jobs": [{k: j.get(k) for k in ("path", "status", "reason", *COLUMNS)}
                        for j in jobs]}
    if jobs:
        save_table(table, sweep_dir / "runs.csv")
    write_json(sweep_dir / "sweep_summary.json", summary)
    return summary


def print_summary(summary: dict, console: Console | None = None) -> None:
    table = Table(title=f"sweep {summary['sweep_dir']}")
    # a column no job has (test_* without data.val_from_train) is left out
    columns = [c for c in COLUMNS if not c.startswith("test_")
               or any(_fmt(job[c]) != "-" for job in summary["jobs"])]
    for col in ("job", "status", *columns, "reason"):
        table.add_column(col, overflow="fold")
    for job in summary["jobs"]:
        job_name = str(Path(job["path"]).relative_to(summary["sweep_dir"]))
        table.add_row(job_name, job["status"], *(_fmt(job[c]) for c in columns),
                      _fmt(job["reason"]))
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in summary["counts"].items())
    console.print(f"{summary['n_jobs']} jobs: {counts}")
    if summary["n_jobs"]:
        console.print(f"records: {summary['sweep_dir']}/*/run.json  table: "
                      f"{summary['sweep_dir']}/runs.csv")


def exit_code(summary: dict) -> int:
    completed = summary["counts"]["completed"]
    if completed == summary["n_jobs"] and completed > 0:
        return exits.OK
    if completed:
        return exits.PARTIAL
    reasons = [str(j.get("reason")) for j in summary["jobs"]]
    if reasons and all(r.startswith("ConfigError") for r in reasons):
        return exits.CONFIG
    return exits.FAILED


class SweepSummary(Callback):
    """Hydra callback: tell the jobs how many there are (for their one line each); summarise
    the multirun at its end and exit non-zero on partial failure."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        n = count_jobs(config)
        if n is not None:  # inherited by every launcher's job processes
            os.environ["SCALINGLAB_SWEEP_JOBS"] = str(n)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        summary = summarize(config.hydra.sweep.dir)
        print_summary(summary)
        code = exit_code(summary)
        if code:
            log.error("sweep finished with failures (exit code %d)", code)
            sys.exit(code)
