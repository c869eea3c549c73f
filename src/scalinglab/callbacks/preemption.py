"""Preemption under SLURM: checkpoint at a step boundary, then let submitit requeue the job.

Exactly one component owns requeueing: submitit. It runs each job of a `hydra/launcher=slurm`
sweep, asks SLURM for its signal (SIGUSR2) `signal_delay_s` before the time limit, and on that
signal requeues the job with the same pickled task, so the requeued job lands in the same
output directory. Lightning's own SLURM requeue is switched off (`SLURMEnvironment(
auto_requeue=False)` in train/job.py), or both would requeue.

submitit's handler would requeue and exit wherever the signal lands, mid-step included, before
any checkpoint exists. So this callback takes the signal over during training, only notes it,
and at the next step boundary (agreed by all ranks) raises `Preempted`: Lightning saves
`interrupted.ckpt` on the way out (OnExceptionCheckpoint), and train/run.py then records the
job as preempted and hands over to submitit's handler, which requeues. The requeued job resumes
from that checkpoint exactly.
"""

import os
import signal
import sys

import lightning.pytorch as pl

# Under DDP the ranks agree on "signalled?" with an all-reduce; every few steps keeps its cost
# negligible, and SLURM's warning comes minutes ahead.
CHECK_EVERY_N_STEPS = 10


def submitit_signal() -> int | None:
    """The signal submitit requeues on, when this process is a submitit SLURM job."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    from submitit.slurm.slurm import SlurmJobEnvironment

    return signal.Signals[f"SIG{SlurmJobEnvironment.USR_SIG}"]


class Preempted(SystemExit):
    """Raised at a step boundary after SLURM's requeue signal."""

    def __init__(self, signum: int, handler) -> None:
        super().__init__(f"preempted by {signal.Signals(signum).name}")
        self.signum, self.handler = signum, handler

    def requeue(self) -> None:
        """Run submitit's handler: rank 0 requeues the job and exits; other ranks just exit.
        Raises submitit's UncompletedJobError when the job may not be requeued again."""
        self.handler(self.signum, None)
        sys.exit(-1)  # what submitit's rank 0 exits with


class Preemption(pl.Callback):
    """Turn submitit's requeue signal into a checkpoint at the next step boundary."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.handler = signal.getsignal(signum)  # submitit's checkpoint-and-requeue
        self.signalled = False

    def _note(self, signum: int, frame) -> None:
        self.signalled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        signal.signal(self.signum, self._note)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        signalled = self.signalled
        if trainer.world_size > 1:
            if trainer.global_step % CHECK_EVERY_N_STEPS:
                return
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if signalled:
            raise Preempted(self.signum, self.handler)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        signal.signal(self.signum, self.handler)
