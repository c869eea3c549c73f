"""The learning curve: a job's model evaluated at log-spaced optimizer steps, and at its end.

Lightning validates on a fixed schedule (every n batches or epochs), and a fixed schedule
either misses a run's early steps or evaluates thousands of times. Scaling work reads curves on
log axes (Approach 1, data-scaling fits), so `LearningCurve` evaluates at steps spread evenly
in log, with the module's own `validation_step` and metrics on the datamodule's validation
loaders: the same numbers Lightning's validation gives. Evaluating changes nothing in training
(eval mode, no gradients, no random numbers drawn). The last row is the final validation, from
the run record; train/run.py writes the rows to `curve.csv` (records.write_curve).
"""

import lightning.pytorch as pl
import torch

from scalinglab import check_number
from scalinglab.records import RunRecord
from scalinglab.train.measure import RunRecorder


def log_steps(total: int, points: int) -> list[int]:
    """Up to `points` optimizer steps from 1 up to (not including) `total`, evenly spaced in
    log; fewer when rounding makes them coincide (a short run)."""
    if points <= 0 or total <= 1:
        return []
    ratio = total ** (1 / points)
    return sorted({round(ratio**k) for k in range(points)} - {total})


def _lr(trainer: pl.Trainer) -> float | None:
    """The learning rate the next step will use."""
    return trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None


class LearningCurve(pl.Callback):
    """Rows of (step, examples seen, train FLOPs, lr, val and train loss and accuracy) at
    `points` log-spaced steps; they travel in checkpoints, so a resumed job keeps its curve.
    Each row also goes to the loggers as `curve/*` step metrics."""

    def __init__(self, recorder: RunRecorder, points: int = 8) -> None:
        self.recorder = recorder
        self.points = check_number("curve.points", points, low=0, integer=True)
        self.rows: list[dict] = []
        self.steps: set[int] = set()
        self.total = 0  # the optimizer steps the run plans (its LR schedule's length)
        self.last_lr: float | None = None

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = state["rows"]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.total = max(1, int(trainer.estimated_stepping_batches))
        evaluates = trainer.limit_val_batches != 0
        self.steps = set(log_steps(self.total, self.points)) if evaluates else set()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_lr = _lr(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # Under gradient accumulation several batches end at one step: the first is right
        # after the optimizer step.
        if step not in self.steps or any(r["step"] == step for r in self.rows):
            return
        row = self._row(trainer, step, self._evaluate(trainer, pl_module))
        self.rows.append(row)
        metrics = {f"curve/{k}": v for k, v in row.items() if k != "step" and v is not None}
        metrics["trainer/examples_seen"] = float(row["examples_seen"])  # W&B's x axis
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def _evaluate(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict:
        was_training = module.training
        module.eval()
        precision = trainer.precision_plugin
        try:
            with torch.no_grad(), precision.val_step_context():
                for idx, loader in enumerate(trainer.datamodule.val_dataloader()):
                    for i, batch in enumerate(loader):
                        module.validation_step(precision.convert_input(batch), i, idx)
            results = module.eval_results()  # every rank takes part: the metrics sync
        finally:
            module.train(was_training)
        return {k: float(v) for k, v in results.items()}

    def _row(self, trainer: pl.Trainer, step: int, results: dict) -> dict:
        dm = trainer.datamodule
        examples = step * dm.batch_size * trainer.accumulate_grad_batches
        fpe = self.recorder.size.get("flops_per_example")
        per_epoch = len(dm.train_batches) // trainer.accumulate_grad_batches
        return {"step": step, "progress": step / self.total,
                "epoch": step / per_epoch if per_epoch else None,
                "examples_seen": examples,
                "train_flops": 3 * fpe * examples if fpe is not None else None,
                "time_s": self.recorder.train_time(),
                "lr": _lr(trainer),
                "val_loss": results.get("val/loss"), "val_acc": results.get("val/acc"),
                "train_loss": results.get("train_eval/loss"),
                "train_acc": results.get("train_eval/acc")}

    def final_rows(self, record: RunRecord) -> list[dict]:
        """The curve with its last row: the final weights as the record measured them."""
        rows = [r for r in self.rows if r["step"] < (record.steps or 0)]
        if record.steps and record.val_loss is not None:
            rows.append({"step": record.steps, "progress": record.steps / max(1, self.total),
                         "epoch": record.epochs, "examples_seen": record.examples_seen,
                         "train_flops": record.train_flops, "time_s": record.time_s,
                         "lr": self.last_lr,
                         "val_loss": record.val_loss, "val_acc": record.val_acc,
                         "train_loss": record.train_loss, "train_acc": record.train_acc})
        return rows
