"""Run management around the job (train/job.py), in one place: a job that already completed with
the same identity is skipped; an unfinished one resumes from its checkpoint; every outcome
(completed, diverged, failed, preempted, interrupted) leaves one `run.json`, written here and
nowhere else, and closes its W&B run. How each outcome is recorded and which exit code it gives
is one table, OUTCOMES; the codes themselves are scalinglab/exits.py's.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, exits
from scalinglab.callbacks.members import MemberRecorder
from scalinglab.callbacks.preemption import Preempted
from scalinglab.callbacks.recorder import RunRecorder
from scalinglab.identity import job_identity, overrides
from scalinglab.launch.ddp import HydraDDPStrategy
from scalinglab.records.io import completed_record, write_curve, write_record
from scalinglab.records.schema import RunRecord
from scalinglab.train.job import Job, build, fit
from scalinglab.train.pack import Member, build_pack, checkpoint_dir, compose_members, log_member
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
        try:
            return recorder.record(trainer)
        except Exception:  # what broke the job may break measuring it: the config, then
            log.warning("%s: its measurements could not be read", identity["job"],
                        exc_info=True)
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


def _finish(members: list[Member], records: list[RunRecord], codes: list[int],
            job: Job | None, loggers: bool = True) -> None:
    """Every record onto disk (rank 0, the one writer of run.json, after the job's
    curve.csv), then each into its W&B run, which then closes: a job's own, or a pack
    member's, written now from its curve (train/pack.py; not with `loggers=False`). One
    record that cannot be written keeps no other off the disk; the first such error is
    raised once every run is closed."""
    rows = [job.curves[k].final_rows(r) if job is not None and r.steps else []
            for k, r in enumerate(records)]
    failed = None
    if rank_zero_only.rank == 0:
        for member, record, own in zip(members, records, rows, strict=True):
            try:
                if own:
                    write_curve(member.output_dir, own)
                write_record(member.output_dir, record)
            except Exception as e:
                log.error("%s: its record could not be written: %s", record.job, e)
                failed = failed or e
    for k, (record, code) in enumerate(zip(records, codes, strict=True)):
        recorder = job.recorders[k] if job is not None else None
        if loggers and isinstance(recorder, MemberRecorder) and rank_zero_only.rank == 0:
            try:
                log_member(recorder, record, rows[k])
            except Exception as e:
                log.warning("%s: its loggers failed: %s: %s", record.job, type(e).__name__, e)
        finish_run(record, code)
    if failed is not None:
        raise failed


def _run(members: list[Member], checkpoints: Path, make: Callable[[], Job], multirun: bool,
         job_num: int | None) -> list[dict]:
    """Build the job (`make`: one job, or a pack of `members`), train it, write each member's
    record into its own directory whatever happens, and return the records. Exits with the
    outcome's code where it ends a single run (any failure) or a sweep (an interrupt).
    `checkpoints`: where the job keeps them, for the records' reasons."""
    job = None
    try:
        try:
            job = make()
            records = fit(job)
            codes = [exits.OK if r.status == "completed" else exits.FAILED for r in records]
            stops_sweep = False
        except BaseException as error:  # every way a job ends is recorded: OUTCOMES
            outcome, code = outcome_of(error)
            records = [failure_record(m.cfg, job and job.recorders[k], job and job.trainer,
                                      m.identity) for k, m in enumerate(members)]
            for k, (member, record) in enumerate(zip(members, records, strict=True)):
                record_outcome(record, outcome, error, member.identity["job"],
                               str(checkpoints), log_it=k == 0)
            if isinstance(error, Preempted):
                # Recorded now: once requeued, SLURM stops every process of the job, W&B's
                # too. submitit then requeues it and exits; this returns only when submitit
                # refuses (requeued too often), with the records saying so. A pack's members'
                # loggers are written once, when it ends (below, or after the requeued job
                # resumes), not in the seconds before the kill.
                _finish(members, records, [exits.OK] * len(records), job, loggers=False)
                try:
                    error.requeue()
                except Exception as refused:  # submitit's UncompletedJobError
                    for k, record in enumerate(records):
                        record_outcome(record, NOT_REQUEUED, refused, record.job,
                                       str(checkpoints), log_it=k == 0)
                outcome, code = NOT_REQUEUED, NOT_REQUEUED.exit_code
            codes = [code] * len(records)
            stops_sweep = outcome.stops_sweep
        _finish(members, records, codes, job)
        # one line per job (rank 0's); a single run's error line said it already
        for record in records:
            if rank_zero_only.rank == 0 and (multirun or record.status != "failed"):
                log.info(_line(record, job_num))
    finally:
        if job is not None and isinstance(job.trainer.strategy, HydraDDPStrategy):
            job.trainer.strategy.end_job()
    if stops_sweep or (any(codes) and not multirun):
        raise SystemExit(max(codes))
    return [r.to_dict() for r in records]


def _completed(member: Member, force: bool) -> dict | None:
    """The member's record if it already completed with the same identity: a re-run skips
    it."""
    previous = None if force else completed_record(member.output_dir, member.identity["identity"])
    if previous is not None:
        log.info("skipping %s: already completed with the same config (force=true retrains)",
                 member.identity["job"])
    return previous


def run_job(cfg: DictConfig, multirun: bool, job_num: int | None) -> dict:
    """Train the job, write its record into its directory (`paths.output_dir`) whatever
    happens, and return the record (`_run`)."""
    output_dir = Path(cfg.paths.output_dir)
    job = Member(cfg, {**job_identity(cfg), "overrides": overrides(cfg)}, output_dir)
    previous = _completed(job, cfg.force)
    if previous is not None:
        return previous
    (record,) = _run([job], output_dir, lambda: build(cfg, job.identity), multirun, job_num)
    return record


def run_pack(cfg: DictConfig, multirun: bool) -> list[dict]:
    """Train a pack's members (train/pack.py) as one job, skipping those already completed,
    and write each member's record into its own directory whatever happens (`_run`); return
    the records."""
    members, done = [], []
    for member in compose_members(cfg):
        previous = _completed(member, cfg.force)
        (members if previous is None else done).append(previous or member)
    if not members:
        return done
    directory = checkpoint_dir(Path(cfg.paths.output_dir), members)
    return done + _run(members, directory, lambda: build_pack(cfg, members, directory),
                       multirun, None)
