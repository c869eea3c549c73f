"""Run management around the job (train/job.py), in one place: a job that already completed with
the same identity is skipped; an unfinished one resumes from its checkpoint; every outcome
(completed, diverged, failed, preempted, interrupted) leaves one `run.json`, written here and
nowhere else, and closes its W&B run. How each outcome is recorded and which exit code it gives
is one table, OUTCOMES; the codes themselves are scalinglab/exits.py's.
"""

import logging
import os
from dataclasses import dataclass

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, exits
from scalinglab.callbacks.preemption import Preempted
from scalinglab.identity import job_identity
from scalinglab.launch.ddp import HydraDDPStrategy
from scalinglab.records.io import completed_record, write_curve, write_record
from scalinglab.records.schema import RunRecord
from scalinglab.train.job import Job, build, fit
from scalinglab.train.wandb import finish_run

log = logging.getLogger("scalinglab")


@dataclass(frozen=True)
class Outcome:
    """How a job that raised ended: its record's status and reason, the exit code of a single
    run (and of the job's W&B run), whether a sweep stops there, and the line the log gets."""

    status: str
    exit_code: int | None  # None: the exception's own (a SystemExit's code)
    stops_sweep: bool      # the process was told to stop: no later job of a sweep runs
    reason: str            # {kind}: the exception's type, {error}: its message
    message: str           # the log line; {job} and {out} (the job's directory) too
    level: int = logging.ERROR
    traceback: bool = False


# {resume}: what a re-run does, by whether training had started (then a checkpoint was saved)
INTERRUPTED = ("interrupted ({kind}){resume}", "interrupted{resume}")
# The first row whose exception type matches decides. In a sweep a job's own failure is
# recorded and the sweep goes on; its summary reports it at the end (launch/summary.py).
OUTCOMES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Outcome], ...] = (
    (Preempted, Outcome("preempted", exits.OK, True, "{error}", "{error}: checkpoint saved "
                        "in {out}/checkpoints; submitit requeues the job", logging.WARNING)),
    (SIGTERMException, Outcome("failed", exits.SIGTERM, True, *INTERRUPTED, logging.WARNING)),
    (KeyboardInterrupt, Outcome("failed", exits.INTERRUPTED, True, *INTERRUPTED,
                                logging.WARNING)),
    # Lightning's own exit after Ctrl-C inside fit (and any other SystemExit)
    (SystemExit, Outcome("failed", None, True, *INTERRUPTED, logging.WARNING)),
    (ConfigError, Outcome("failed", exits.CONFIG, False, "ConfigError: {error}",
                          "config error: {error}")),
    (Exception, Outcome("failed", exits.FAILED, False, "{kind}: {error}",
                        "job {job} failed: {kind}: {error}", traceback=True)),
)
NOT_REQUEUED = Outcome("failed", exits.FAILED, False, "{kind}: {error}",
                       "job {job} not requeued: {error}")


def outcome_of(error: BaseException) -> tuple[Outcome, int]:
    """The table's row for `error`, and the exit code it gives."""
    outcome = next(outcome for kind, outcome in OUTCOMES if isinstance(error, kind))
    code = outcome.exit_code
    if code is None:  # a SystemExit's own code, e.g. Lightning's after Ctrl-C
        code = error.code if isinstance(error.code, int) and error.code else exits.FAILED
    return outcome, code


def record_outcome(record: RunRecord, outcome: Outcome, error: BaseException, job: str,
                   output_dir: str) -> None:
    """The outcome into the record, and its line into the log."""
    resume = (f"; a checkpoint was saved in {output_dir}/checkpoints and a re-run resumes "
              "from it" if record.steps else " before training started; a re-run starts it")
    fill = {"kind": type(error).__name__, "error": error, "job": job, "out": output_dir,
            "resume": resume}
    record.status, record.reason = outcome.status, outcome.reason.format(**fill)
    log.log(outcome.level, outcome.message.format(**fill), exc_info=outcome.traceback)


def failure_record(cfg: DictConfig, job: Job | None, identity: dict) -> RunRecord:
    """What is known of a job that did not complete: its measurements so far when training
    had started, else its config."""
    if job is not None and job.recorder.size:
        return job.recorder.record(job.trainer)
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # the error may be in the config itself
        config = OmegaConf.to_container(cfg, resolve=False)
    return RunRecord(**identity, family=cfg.model.get("family"), depth=cfg.model.get("depth"),
                     width=cfg.model.get("width"), seed=cfg.get("seed"), config=config)


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


def _line(record: RunRecord, job_num: int | None) -> str:
    """One line per job as it ends."""
    total = os.environ.get("SCALINGLAB_SWEEP_JOBS")
    where = f"[{job_num + 1}/{total}] " if job_num is not None and total else ""

    def fmt(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    test = ("" if record.test_loss is None else f" test_loss={fmt(record.test_loss, '.4g')} "
            f"test_acc={fmt(record.test_acc, '.3f')}")
    return (f"{where}{record.job} {record.status}: params={fmt(record.params, ',')} "
            f"val_loss={fmt(record.val_loss, '.4g')} val_acc={fmt(record.val_acc, '.3f')}"
            f"{test} time={fmt(record.time_s, '.1f')}s"
            + (f" ({record.reason})" if record.reason else ""))


def _finish(output_dir: str, record: RunRecord, exit_code: int, job: Job | None) -> None:
    """The record onto disk (rank 0, the one writer of run.json, after the job's curve.csv)
    and into the job's W&B run, which then closes."""
    if rank_zero_only.rank == 0:
        if job is not None and record.steps:
            write_curve(output_dir, job.curve.final_rows(record))
        write_record(output_dir, record)
    finish_run(record, exit_code)


def _requeue(error: Preempted, record: RunRecord, output_dir: str, job: Job | None) -> None:
    """Record the preempted job now (once requeued, SLURM stops every process of the job,
    W&B's too), then hand over to submitit, which requeues it and exits. Returns only when
    submitit refuses (requeued too often), with the record saying so."""
    _finish(output_dir, record, exits.OK, job)
    try:
        error.requeue()
    except Exception as refused:  # submitit's UncompletedJobError
        record_outcome(record, NOT_REQUEUED, refused, record.job, output_dir)


def run_job(cfg: DictConfig, multirun: bool, job_num: int | None) -> dict:
    """Train the job, write its record into its directory (`paths.output_dir`) whatever
    happens, and return the record. Exits with the outcome's code where it ends a single run
    (any failure) or a sweep (an interrupt)."""
    output_dir = str(cfg.paths.output_dir)
    identity = {**job_identity(cfg), "overrides": overrides(cfg)}
    previous = None if cfg.force else completed_record(output_dir, identity["identity"])
    if previous is not None:
        log.info("skipping %s: already completed with the same config (force=true retrains)",
                 identity["job"])
        return previous
    job = None
    try:
        try:
            job = build(cfg, identity)
            record = fit(job)
            exit_code = exits.OK if record.status == "completed" else exits.FAILED
            stops_sweep = False
        except BaseException as error:  # every way a job ends is recorded: OUTCOMES
            outcome, exit_code = outcome_of(error)
            record = failure_record(cfg, job, identity)
            record_outcome(record, outcome, error, identity["job"], output_dir)
            if isinstance(error, Preempted):
                _requeue(error, record, output_dir, job)
                outcome, exit_code = NOT_REQUEUED, NOT_REQUEUED.exit_code
            stops_sweep = outcome.stops_sweep
        _finish(output_dir, record, exit_code, job)
        # one line per job (rank 0's); a single run's error line said it already
        if rank_zero_only.rank == 0 and (multirun or record.status != "failed"):
            log.info(_line(record, job_num))
    finally:
        if job is not None and isinstance(job.trainer.strategy, HydraDDPStrategy):
            job.trainer.strategy.end_job()
    if stops_sweep or (exit_code and not multirun):
        raise SystemExit(exit_code)
    return record.to_dict()
