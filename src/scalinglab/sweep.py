"""The end of a multirun: collect every job's record, print a summary, set the exit code.

Exit codes of `scalinglab-train -m`: 0 every job completed; 3 some completed and some failed or
diverged (partial); 1 no job completed. Written here, in a Hydra callback, because Hydra calls
`on_multirun_end` after the last job on every launcher.
"""

import json
import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from scalinglab import records

log = logging.getLogger("scalinglab")
COLUMNS = ("family", "depth", "width", "params", "train_size", "seed", "val_loss", "val_acc",
           "time_s")
EXIT_PARTIAL, EXIT_NONE = 3, 1


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
    table = records.collect(sweep_dir)
    jobs = [] if table.empty else table.to_dict("records")
    jobs.sort(key=lambda j: (str(j.get("family")), _num(j.get("params")), _num(j.get("seed")),
                             str(j["path"])))
    counts = {s: sum(j.get("status") == s for j in jobs) for s in records.STATUSES}
    summary = {"sweep_dir": str(sweep_dir), "n_jobs": len(jobs), "counts": counts,
               "jobs": [{k: j.get(k) for k in ("path", "status", "reason", *COLUMNS)}
                        for j in jobs]}
    if jobs:
        records.save_table(table, sweep_dir / "runs.csv")
    tmp = sweep_dir / ".sweep_summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    tmp.replace(sweep_dir / "sweep_summary.json")
    return summary


def print_summary(summary: dict, console: Console | None = None) -> None:
    table = Table(title=f"sweep {summary['sweep_dir']}")
    for col in ("job", "status", *COLUMNS, "reason"):
        table.add_column(col, overflow="fold")
    for job in summary["jobs"]:
        job_name = str(Path(job["path"]).relative_to(summary["sweep_dir"]))
        table.add_row(job_name, job["status"], *(_fmt(job[c]) for c in COLUMNS),
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
        return 0
    return EXIT_PARTIAL if completed else EXIT_NONE


class SweepSummary(Callback):
    """Hydra callback: summarise a multirun at its end and exit non-zero on partial failure."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        summary = summarize(config.hydra.sweep.dir)
        print_summary(summary)
        code = exit_code(summary)
        if code:
            log.error("sweep finished with failures (exit code %d)", code)
            sys.exit(code)
