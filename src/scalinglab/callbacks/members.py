"""The run recorder and learning curve of each member of a pack (`pack=[...]`, train/pack.py):
each member measures into its own run record and curve, as if it had trained alone, from the
K values per metric that packed.PackedTask evaluates at once."""

from dataclasses import replace

import lightning.pytorch as pl
import torch

from scalinglab.callbacks.curve import LearningCurve
from scalinglab.callbacks.recorder import RunRecorder
from scalinglab.packed import MemberMean
from scalinglab.records.schema import RunRecord

# What a validation measures; the rest of a stopped member's record is its stop's.
MEASURED = ("val_loss", "val_acc", "train_loss", "train_acc", "val_bpb", "best_val_loss",
            "train_val_gap")


def validates_after_stop(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates a job that stops mid-epoch (it does so when validation runs
    this epoch; min_steps and min_epochs, which hold a stop back, are not used with pack)."""
    every = trainer.check_val_every_n_epoch
    return trainer.limit_val_batches != 0 and (every is None
                                               or (trainer.current_epoch + 1) % every == 0)


class MemberRecorder(RunRecorder):
    """Member `member`'s RunRecorder. Its divergence stops that member alone, and its record
    is the one a job that stopped there would have written: Lightning validates a job that
    stops mid-epoch once more, so a member stopped by its training loss takes the pack's next
    validation (its weights have not moved since), with the rest of its record as it was at
    its stop."""

    def __init__(self, member: int, *args, loggers: list | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.member = member
        self.loggers = loggers or []  # the member's own, written when the pack ends
        self.stopped: RunRecord | None = None  # stopped, awaiting that validation
        self.final: RunRecord | None = None  # stopped and measured

    @property
    def state_key(self) -> str:  # one entry per member in a checkpoint
        return f"{type(self).__qualname__}[{self.member}]"

    def state_dict(self) -> dict:
        return {**super().state_dict(), "final": self.final and self.final.to_dict(),
                "stopped": self.stopped and self.stopped.to_dict(), "metrics": self.metrics}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.final = RunRecord(**state["final"]) if state["final"] else None
        self.stopped = RunRecord(**state["stopped"]) if state["stopped"] else None
        self.metrics = state["metrics"]
        if self.final or self.stopped:
            self.diverged = (self.final or self.stopped).reason

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        resumed, self.resumed = self.resumed, self.resumed and self.member == 0  # one line
        super().on_train_start(trainer, pl_module)
        self.resumed = resumed

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self.state_bytes //= pl_module.members  # the pack's parameters, gradients, moments

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # As a job's own check: every n steps (reading the loss syncs the device)
        if self.diverged or trainer.global_step < self.next_check:
            return
        self.next_check = trainer.global_step + self.check_every_n_steps
        if pl_module.nonfinite(outputs["losses"])[self.member]:
            self._diverge(trainer, f"non-finite training loss by step {trainer.global_step}")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # the pack logs no metrics: each member's are in its record and curve

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.final is not None:
            return
        if self.stopped is None:
            super().on_validation_end(trainer, pl_module)
            return
        # the validation Lightning would have run at the stop, of the weights of then
        self.take(trainer, self.measured(trainer, pl_module, ("val/", "train_eval/")),
                  self.stopped.steps)
        measured = RunRecorder.record(self, trainer)
        self.final = replace(self.stopped, reason=self.diverged,
                             **{key: getattr(measured, key) for key in MEASURED})

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.diverged:
            super().on_test_end(trainer, pl_module)

    def measured(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                 splits: tuple[str, ...]) -> dict[str, float]:
        return {k: float(v[self.member]) for k, v in pl_module.measured.items()
                if k.startswith(splits)}

    def _diverge(self, trainer: pl.Trainer, reason: str) -> None:
        self.diverged = reason
        if self.stopped is not None:  # its validation after the stop: on_validation_end
            return
        if trainer.validating or not validates_after_stop(trainer):
            self.final = RunRecorder.record(self, trainer)
        else:
            self.stopped = RunRecorder.record(self, trainer)
        trainer.lightning_module.stop(self.member)

    def record(self, trainer: pl.Trainer) -> RunRecord:
        frozen = self.final or self.stopped
        if frozen is None:
            return super().record(trainer)
        return replace(frozen, state_bytes=self.state_bytes)  # measured when training ends


class MemberCurve(LearningCurve):
    """One member's rows (and `final_rows`), at its own learning rate; PackCurve adds them."""

    def __init__(self, member: int, points: int) -> None:
        super().__init__(points)
        self.member = member

    def lr(self, trainer: pl.Trainer) -> float | None:
        if not trainer.optimizers:
            return None
        module = trainer.lightning_module
        if self.member in module.stopped:  # the rate it stopped with
            return module.stopped[self.member]
        return module.member_lr(self.member)


class PackCurve(LearningCurve):
    """The learning curve of every member: one evaluation of the pack at each log-spaced step,
    a row for each member's curve."""

    def __init__(self, points: int, members: int) -> None:
        super().__init__(points)
        self.members = [MemberCurve(k, points) for k in range(members)]

    def state_dict(self) -> dict:
        return {"rows": [m.rows for m in self.members]}

    def load_state_dict(self, state: dict) -> None:
        for member, rows in zip(self.members, state["rows"], strict=True):
            member.rows = rows

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        for m in self.members:
            m.total, m.examples_per_step = self.total, self.examples_per_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        for m in self.members:
            m.last_lr = m.lr(trainer)

    def has_row(self, step: int) -> bool:
        return self.members[0].has_row(step)  # every member has a row at the same steps

    def _add_row(self, trainer: pl.Trainer, results: dict) -> None:
        for k, member in enumerate(self.members):
            member._add_row(trainer, {key: values[k] for key, values in results.items()})

    def _metric(self, key: str, device: torch.device) -> MemberMean:
        if key not in self.metrics:
            self.metrics[key] = MemberMean(len(self.members)).to(device)
        return self.metrics[key]
