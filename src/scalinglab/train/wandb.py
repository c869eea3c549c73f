"""The job's Weights & Biases run: Lightning's WandbLogger made for one job (its id kept in the
job's directory, its group the study, offline when there is no login), and at the job's end its
summary set to the run record and the run closed. Runs read back are records/wandb.py's."""

import logging
import secrets
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from scalinglab.files import atomic_write
from scalinglab.records.schema import CONFIG_KEYS, SUMMARY_KEYS, RunRecord
from scalinglab.records.wandb import resolve_mode

log = logging.getLogger("scalinglab")
ID_FILE = "wandb_id"


def run_id(save_dir: str | Path) -> str:
    """The job's W&B run id, kept in its directory so a resumed job continues the same run."""
    path = Path(save_dir) / ID_FILE
    if path.exists():
        return path.read_text().strip()
    run = secrets.token_hex(6)  # W&B accepts any short lowercase alphanumeric id
    atomic_write(path, run)
    return run


def study_name(study: str | None) -> str:
    """The W&B group: `study` when set, else the sweep directory's name, else 'runs'."""
    if study:
        return str(study)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return "runs"


def make_logger(project: str, save_dir: str, name: str, job_type: str,
                entity: str | None = None, study: str | None = None,
                tags: list[str] | None = None, mode: str | None = None) -> WandbLogger:
    """Lightning's WandbLogger for one job (only rank 0 ever creates the run)."""
    is_zero = rank_zero_only.rank == 0
    return WandbLogger(project=project, entity=entity, group=study_name(study),
                       job_type=job_type, name=name, tags=list(tags or []),
                       save_dir=save_dir, id=run_id(save_dir) if is_zero else None,
                       resume="allow", mode=resolve_mode(mode) if is_zero else "disabled")


def finish_run(record: RunRecord, exit_code: int) -> None:
    """The job's final record into its W&B run, if one is open (the summary and config keys
    the record's schema names), then the run closed: every job of a multirun gets its own run,
    and a failed job's closes with a non-zero `exit_code`, so W&B marks it failed."""
    wandb = sys.modules.get("wandb")  # imported only by a WandbLogger
    if wandb is None or wandb.run is None:
        return
    values = record.to_dict()
    try:
        wandb.run.summary.update({key: values.get(col) for col, key in SUMMARY_KEYS.items()})
        wandb.run.config.update({k: values.get(k) for k in CONFIG_KEYS}, allow_val_change=True)
        wandb.finish(exit_code=exit_code)
    except Exception as e:  # e.g. its service was killed: never mask how the job ended
        log.warning("W&B run not finished cleanly: %s: %s", type(e).__name__, e)
