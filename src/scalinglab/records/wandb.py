"""Weights & Biases, table side: a study's runs read back as rows of the runs table (offline
files or the API), and the fit logged as a run of its own. The training side's W&B run is
train/wandb.py's.

The summary and config keys come from the run record's schema (records/schema.py), so a study
logged only to W&B exports back into the same table as local records (`scalinglab-export`).
A table tool: no torch, no Lightning.
"""

import json
import logging
import netrc
import os
import subprocess
import sys
from pathlib import Path

from scalinglab.records.schema import CONFIG_KEYS, SUMMARY_KEYS

log = logging.getLogger("scalinglab")
_warned = False  # the offline notice is printed once per process


def logged_in() -> bool:
    """An API key in the environment or ~/.netrc: online logging can work without a prompt."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str | None) -> str | None:
    """The mode to run in. Never prompts: with no key and no login, fall back to offline."""
    mode = mode or os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if logged_in():
        return "online"
    global _warned
    if not _warned:
        log.warning("W&B: no API key or login found; logging offline "
                    "(sync later with `wandb sync`)")
        _warned = True
    return "offline"


def to_row(name: str, group: str | None, config: dict, summary: dict) -> dict:
    """One W&B run as a row of the runs table, with run.json's column names."""
    row = {k: config.get(k) for k in CONFIG_KEYS}
    row.update({col: summary.get(key) for col, key in SUMMARY_KEYS.items()
                if summary.get(key) is not None or col not in row})
    row.update(wandb_run=name, study=group)
    return row


def read_api(path: str, group: str | None = None, api=None) -> tuple[list[dict], dict]:
    """Finished runs of `ENTITY/PROJECT` (optionally one group) through the W&B public API.
    Returns the rows and {reason: count} for the runs skipped."""
    if api is None:
        import wandb

        api = wandb.Api()
    rows, skipped = [], {}
    for run in api.runs(path, filters={"group": group} if group else None):
        if getattr(run, "job_type", None) == "fit":
            reason = "fit run, not a training run"
        elif run.state != "finished":
            reason = f"state {run.state}"
        else:
            rows.append(to_row(run.name, run.group, dict(run.config), dict(run.summary)))
            continue
        skipped[reason] = skipped.get(reason, 0) + 1
    return rows, skipped


def read_offline(directory: str | Path) -> tuple[list[dict], dict]:
    """Offline runs (`offline-run-*`) under `directory`, read with wandb's own reader
    (`wandb leet inspect --summary --json`), so a study can be fitted before it is synced."""
    rows, skipped = [], {}
    exe = Path(sys.executable).with_name("wandb")
    for run_dir in sorted(Path(directory).rglob("offline-run-*")):
        if not run_dir.is_dir():
            continue
        out = subprocess.run([str(exe), "leet", "inspect", "--summary", "--json", str(run_dir)],
                             capture_output=True, text=True, timeout=120)
        try:
            doc = json.loads(out.stdout)
        except json.JSONDecodeError:
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        config, summary = _config_of(doc), doc.get("summary") or {}
        if config.get("job_type") == "fit":
            reason = "fit run, not a training run"
        elif doc.get("state") != "finished":
            reason = f"state {doc.get('state')}"
        elif "size/params" not in summary:
            reason = "no size summary"
        else:
            rows.append(to_row(doc.get("name") or run_dir.name, config.get("study"), config,
                               summary))
            continue
        skipped[reason] = skipped.get(reason, 0) + 1
    return rows, skipped


def _config_of(doc: dict) -> dict:
    config = doc.get("config") or {}
    # wandb stores config values as {"value": v}; unwrap them
    return {k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
            for k, v in config.items()}


def log_fit(doc: dict, plots: list[Path], project: str, entity: str | None, group: str,
            source: str, mode: str | None = None) -> str:
    """A run of job_type `fit` in the study's group: the parameter table (with intervals when
    bootstrapped), the plots, and exponents and predictions as summary metrics."""
    import wandb

    run = wandb.init(project=project, entity=entity, group=group, job_type="fit",
                     name=f"fit-{group}", mode=resolve_mode(mode), reinit="finish_previous",
                     config={"source": source, "job_type": "fit", "study": group})
    try:
        table = wandb.Table(columns=["group", "law", "quantity", "value", "ci_lo", "ci_hi"])
        summary = {}
        for f in doc["fits"]:
            label = f["label"]
            for name, value in {**f["params"], **f["derived"]}.items():
                lo, hi = (f.get("ci") or {}).get(name) or (None, None)
                table.add_data(label, f["law"], name, value, lo, hi)
                summary[f"fit/{label}/{name}"] = value
            summary[f"fit/{label}/rmse_log_fit"] = f["rmse_log_fit"]
            if f["rmse_log_holdout"] is not None:
                summary[f"fit/{label}/rmse_log_holdout"] = f["rmse_log_holdout"]
        run.log({"fit/params": table,
                 **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots if p.suffix == ".png"}})
        run.summary.update(summary)
        return run.id
    finally:
        run.finish()
