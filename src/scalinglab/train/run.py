"""`scalinglab-train`: train one model size and record it; `-m` sweeps a grid of sizes.

Run management around the recipe (train/recipe.py), in one place: a job that already completed
with the same identity is skipped; an unfinished one resumes from its checkpoint; every outcome
(completed, diverged, failed, preempted, interrupted) leaves one `run.json`, written here and
nowhere else, and closes its W&B run. Exit codes of a single run: 0 completed, 2 a config error
(before training), 143 SIGTERM (checkpoint saved), 1 anything else (diverged, failed). A
multirun's exit code is set by its summary (launch/summary.py).
"""

import logging
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, records
from scalinglab.identity import register_resolver
from scalinglab.launch.slurm import Preempted
from scalinglab.launch.slurm import register_resolver as register_slurm_resolver
from scalinglab.records import RunRecord
from scalinglab.records.wandb import finish_run, summarize_run
from scalinglab.train.quiet import quiet_lightning
from scalinglab.train.recipe import job_identity, train

log = logging.getLogger("scalinglab")
register_resolver()
register_slurm_resolver()
EXIT_CONFIG, EXIT_SIGTERM = 2, 143  # 143 = 128 + SIGTERM, as a shell reports it


def completed_before(cfg: DictConfig, output_dir: str, job: dict) -> dict | None:
    """The job's record if it already completed with this identity (and force is off)."""
    path = Path(output_dir) / records.RECORD_NAME
    if cfg.force or not path.exists():
        return None
    previous = records.read_record(path)
    same = previous.get("identity") == job["identity"]
    return previous if previous.get("status") == "completed" and same else None


def failure_record(cfg: DictConfig, job: dict, built: dict, status: str,
                   reason: str) -> RunRecord:
    """What is known of a job that did not complete: its measurements so far when training
    had started, else its config."""
    recorder, trainer = built.get("recorder"), built.get("trainer")
    if recorder is not None and recorder.size:
        record = recorder.record(trainer)
    else:
        try:
            config = OmegaConf.to_container(cfg, resolve=True)
        except Exception:  # the error may be in the config itself
            config = OmegaConf.to_container(cfg, resolve=False)
        record = RunRecord(**job, family=cfg.model.get("family"), depth=cfg.model.get("depth"),
                           width=cfg.model.get("width"), seed=cfg.get("seed"), config=config)
    record.status, record.reason = status, reason
    return record


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0


def _report(record: RunRecord, job_num: int | None) -> None:
    """One line per job as it ends."""
    total = os.environ.get("SCALINGLAB_SWEEP_JOBS")
    where = f"[{job_num + 1}/{total}] " if job_num is not None and total else ""

    def fmt(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    test = ("" if record.test_loss is None else f" test_loss={fmt(record.test_loss, '.4g')} "
            f"test_acc={fmt(record.test_acc, '.3f')}")
    log.info("%s%s %s: params=%s val_loss=%s val_acc=%s%s time=%ss%s", where, record.job,
             record.status, fmt(record.params, ","), fmt(record.val_loss, ".4g"),
             fmt(record.val_acc, ".3f"), test, fmt(record.time_s, ".1f"),
             f" ({record.reason})" if record.reason else "")


def overrides(cfg: DictConfig) -> dict:
    """What the command line or the sweep set for this job: each overridden key's path and
    the value the job resolved (a config group's choice for a group)."""
    if not HydraConfig.initialized():
        return {}
    out = {}
    for o in OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task)):
        key = o.key_or_group
        if key.startswith("hydra.") or o.value() is None:
            continue
        value = OmegaConf.select(cfg, key, default=None)
        out[key] = (o.get_value_element_as_str() if value is None or OmegaConf.is_config(value)
                    else value)
    return out


def run_job(cfg: DictConfig, output_dir: str, multirun: bool, job_num: int | None) -> dict | None:
    """Train the job, write its record whatever happens, and return the record."""
    job = {**job_identity(cfg), "overrides": overrides(cfg)}
    previous = completed_before(cfg, output_dir, job)
    if previous is not None:
        log.info("skipping %s: already completed with the same config (force=true retrains)",
                 job["job"])
        return previous
    built: dict = {}
    record, exit_code = None, 1
    try:
        record = train(cfg, output_dir, job, built)
        exit_code = 0 if record.status == "completed" else 1
        return record.to_dict()
    except Preempted as preempted:
        record = failure_record(cfg, job, built, "preempted", str(preempted))
        # Now, not in `finally`: once requeued, SLURM stops every process of the job (W&B's
        # too). `finally` writes the record again, as it then stands.
        _finish(output_dir, record, 0, built.get("curve"))
        log.warning("%s: checkpoint saved in %s/checkpoints; submitit requeues the job",
                    preempted, output_dir)
        try:
            preempted.requeue()
        except Exception as refused:  # submitit's UncompletedJobError: requeued too often
            record.status, record.reason = "failed", f"{type(refused).__name__}: {refused}"
            log.error("job %s not requeued: %s", job["job"], refused)
            return record.to_dict()
    except SystemExit as stop:  # SIGTERM (Lightning's SIGTERMException) or Ctrl-C
        record = failure_record(cfg, job, built, "failed",
                                f"interrupted ({type(stop).__name__}); a checkpoint was saved in "
                                "checkpoints/ and a re-run resumes from it")
        log.warning("interrupted: checkpoint saved in %s/checkpoints; run the same command "
                    "again to resume", output_dir)
        if type(stop).__name__ == "SIGTERMException":
            stop = SystemExit(EXIT_SIGTERM)
        raise stop from None
    except ConfigError as error:
        record = failure_record(cfg, job, built, "failed", f"ConfigError: {error}")
        log.error("config error: %s", error)
        if not multirun:
            raise SystemExit(EXIT_CONFIG) from None
        return record.to_dict()
    except Exception as error:
        record = failure_record(cfg, job, built, "failed", f"{type(error).__name__}: {error}")
        if not multirun:
            raise
        # In a multirun a failed job is recorded and the sweep goes on; its summary reports
        # the failure at the end and sets the exit code.
        log.exception("job %s failed", job["job"])
        return record.to_dict()
    finally:
        if record is not None:
            _finish(output_dir, record, exit_code, built.get("curve"))
            # one line per job (rank 0's); a single run's error line said it already
            if _is_rank_zero() and (multirun or record.status != "failed"):
                _report(record, job_num)
        end_ddp_job = getattr(getattr(built.get("trainer"), "strategy", None), "end_job", None)
        if end_ddp_job is not None:
            end_ddp_job()


def _finish(output_dir: str, record: RunRecord, exit_code: int, curve=None) -> None:
    """The record onto disk (rank 0, the one writer of run.json, after the job's curve.csv)
    and into the W&B run, which then closes: every job its own run, a failed job's marked
    failed."""
    if _is_rank_zero():
        if curve is not None and record.steps:
            records.write_curve(output_dir, curve.final_rows(record))
        records.write_record(output_dir, record)
        summarize_run(record)
    finish_run(exit_code)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> dict | None:
    quiet_lightning()
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    n_jobs = hydra_cfg.launcher.get("n_jobs")
    if multirun and "Joblib" in hydra_cfg.launcher.get("_target_", "") and n_jobs:
        from scalinglab.launch.slots import configure_worker

        share = configure_worker(hydra_cfg.sweep.dir, n_jobs)
        log.info("worker slot %(slot)d: %(threads)d threads, GPUs %(gpus)s", share)
    job_num = hydra_cfg.job.get("num") if multirun else None
    record = run_job(cfg, hydra_cfg.runtime.output_dir, multirun, job_num)
    if not multirun and record is not None and record["status"] != "completed":
        raise SystemExit(1)  # diverged: a single run that did not complete fails, as a sweep does
    return record


if __name__ == "__main__":
    main()
