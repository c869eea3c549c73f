"""Run management around the job (train/job.py), in one place: a job that already completed with
the same identity is skipped; an unfinished one resumes from its checkpoint; every outcome
(completed, diverged, failed, preempted, interrupted) leaves one `run.json`, written here and
nowhere else, and closes its W&B run. How each outcome is recorded and which exit code it gives
is one table, OUTCOMES; the codes themselves are scalinglab/exits.py's.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, exits
from scalinglab.callbacks.curve import LearningCurve
from scalinglab.callbacks.preemption import Preempted
from scalinglab.callbacks.recorder import RunRecorder
from scalinglab.identity import job_identity, overrides
from scalinglab.launch.ddp import HydraDDPStrategy
from scalinglab.records.io import completed_record, write_curve, write_record
from scalinglab.records.schema import RunRecord
from scalinglab.train.job import build, fit
from scalinglab.train.pack import build_pack, checkpoint_dir, compose_members, fit_pack, log_member
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
                   output_dir: str, log_it: bool = True) -> None:
    """The outcome into the record, and its line into the log (once for a pack's members)."""
    resume = (f"; a checkpoint was saved in {output_dir}/checkpoints and a re-run resumes "
              "from it" if record.steps else " before training started; a re-run starts it")
    fill = {"kind": type(error).__name__, "error": error, "job": job, "out": output_dir,
            "resume": resume}
    record.status, record.reason = outcome.status, outcome.reason.format(**fill)
    if log_it:
        log.log(outcome.level, outcome.message.format(**fill), exc_info=outcome.traceback)


def failure_record(cfg: DictConfig, recorder: RunRecorder | None, trainer: pl.Trainer | None,
                   identity: dict) -> RunRecord:
    """What is known of a job that did not complete: its measurements so far when training
    had started, else its config."""
    if recorder is not None and recorder.size:
        return recorder.record(trainer)
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # the error may be in the config itself
        config = OmegaConf.to_container(cfg, resolve=False)
    return RunRecord(**identity, family=cfg.model.get("family"), depth=cfg.model.get("depth"),
                     width=cfg.model.get("width"), seed=cfg.get("seed"), config=config)


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


def _finish(output_dir: str, record: RunRecord, exit_code: int,
            curve: LearningCurve | None, member: DictConfig | None = None) -> None:
    """The record onto disk (rank 0, the one writer of run.json, after the job's curve.csv)
    and into the job's W&B run, which then closes. A pack's `member` gets its W&B run here,
    from its config, curve and record."""
    rows = curve.final_rows(record) if curve is not None and record.steps else None
    if rank_zero_only.rank == 0:
        if rows:
            write_curve(output_dir, rows)
        write_record(output_dir, record)
    if member is not None and rank_zero_only.rank == 0:
        log_member(member, record, rows or [])
    finish_run(record, exit_code)


def _requeue(error: Preempted, jobs: list[tuple[str, RunRecord, LearningCurve | None]]) -> None:
    """Record the preempted jobs (a job, or a pack's members) now: once requeued, SLURM stops
    every process of the job, W&B's too. Then hand over to submitit, which requeues it and
    exits. Returns only when submitit refuses (requeued too often), with the records saying
    so."""
    for output_dir, record, curve in jobs:
        _finish(output_dir, record, exits.OK, curve)
    try:
        error.requeue()
    except Exception as refused:  # submitit's UncompletedJobError
        for i, (output_dir, record, _) in enumerate(jobs):
            record_outcome(record, NOT_REQUEUED, refused, record.job, output_dir, log_it=i == 0)


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
            record = failure_record(cfg, job and job.recorder, job and job.trainer, identity)
            record_outcome(record, outcome, error, identity["job"], output_dir)
            if isinstance(error, Preempted):
                _requeue(error, [(output_dir, record, job and job.curve)])
                outcome, exit_code = NOT_REQUEUED, NOT_REQUEUED.exit_code
            stops_sweep = outcome.stops_sweep
        _finish(output_dir, record, exit_code, job and job.curve)
        # one line per job (rank 0's); a single run's error line said it already
        if rank_zero_only.rank == 0 and (multirun or record.status != "failed"):
            log.info(_line(record, job_num))
    finally:
        if job is not None and isinstance(job.trainer.strategy, HydraDDPStrategy):
            job.trainer.strategy.end_job()
    if stops_sweep or (exit_code and not multirun):
        raise SystemExit(exit_code)
    return record.to_dict()


def run_pack(cfg: DictConfig, multirun: bool) -> list[dict]:
    """Train a pack's members (train/pack.py) as one job, skipping those already completed,
    and write each member's record into its own directory whatever happens, as `run_job`
    does for one job; return the records."""
    members, done = [], []
    for member in compose_members(cfg):
        previous = (None if cfg.force else
                    completed_record(member.output_dir, member.identity["identity"]))
        if previous is not None:
            log.info("skipping %s: already completed with the same config (force=true "
                     "retrains)", member.identity["job"])
            done.append(previous)
        else:
            members.append(member)
    if not members:
        return done
    pack = None
    try:
        try:
            pack = build_pack(cfg, members, checkpoint_dir(Path(cfg.paths.output_dir), members))
            records = fit_pack(pack)
            codes = [exits.OK if r.status == "completed" else exits.FAILED for r in records]
            stops_sweep = False
        except BaseException as error:  # every member's record says how the pack ended
            outcome, exit_code = outcome_of(error)
            records = []
            for k, member in enumerate(members):
                recorder = pack.recorders[k] if pack is not None else None
                records.append(failure_record(member.cfg, recorder, pack and pack.trainer,
                                              member.identity))
                record_outcome(records[-1], outcome, error, member.identity["job"],
                               str(member.output_dir), log_it=k == 0)
            if isinstance(error, Preempted):
                _requeue(error, [(str(m.output_dir), r, pack and pack.curve.members[k])
                                 for k, (m, r) in enumerate(zip(members, records, strict=True))])
                outcome, exit_code = NOT_REQUEUED, NOT_REQUEUED.exit_code
            codes = [exit_code] * len(members)
            stops_sweep = outcome.stops_sweep
        for k, (member, record) in enumerate(zip(members, records, strict=True)):
            _finish(str(member.output_dir), record, codes[k], pack and pack.curve.members[k],
                    member.cfg)
            if rank_zero_only.rank == 0:
                log.info(_line(record, None))
    finally:
        if pack is not None and isinstance(pack.trainer.strategy, HydraDDPStrategy):
            pack.trainer.strategy.end_job()
    if stops_sweep or (any(codes) and not multirun):
        raise SystemExit(max(codes))
    return done + [r.to_dict() for r in records]
