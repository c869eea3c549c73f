"""The learning curve: a job's model evaluated at log-spaced optimizer steps, and at its end.

Lightning validates on a fixed schedule (every n batches or epochs), and a fixed schedule
either misses a run's early steps or evaluates thousands of times. Scaling work reads curves on
log axes (Approach 1, data-scaling fits), so `LearningCurve` evaluates at steps spread evenly
in log: the module's own `evaluate(batch)` on the datamodule's validation loaders (held-out
data, then training examples when there is a second loader), reduced by metrics of its own
(torchmetrics, synced across DDP ranks), so the numbers are those Lightning's validation
gives. Evaluating changes nothing in training (eval mode, no gradients, the random state put
back: a DataLoader's iterator draws a seed). A LightningModule without `evaluate` gets a row
at each of Lightning's own validations instead. The last row is the final validation, from the
run record; train/run.py writes the rows to `curve.csv` (records/io.py).
"""

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics import MeanMetric

from scalinglab import check_number
from scalinglab.measure import epochs_seen, rng_untouched, train_time, training_flops
from scalinglab.module import EVAL_SPLITS
from scalinglab.records.schema import RunRecord


def log_steps(total: int, points: int) -> list[int]:
    """Up to `points` optimizer steps from 1 up to (not including) `total`, evenly spaced in
    log; fewer when rounding makes them coincide (a short run)."""
    if points <= 0 or total <= 1:
        return []
    ratio = total ** (1 / points)
    return sorted({round(ratio**k) for k in range(points)} - {total})


def row_metrics(row: dict) -> dict[str, float]:
    """A curve row as the loggers get it: `curve/*` step metrics."""
    metrics = {f"curve/{k}": v for k, v in row.items() if k != "step" and v is not None}
    metrics["trainer/examples_seen"] = float(row["examples_seen"])  # W&B's x axis
    return metrics


class LearningCurve(pl.Callback):
    """Rows of (step, examples seen, lr, val and train loss and accuracy) at `points`
    log-spaced steps; they travel in checkpoints, so a resumed job keeps its curve. Each row
    also goes to the loggers as `curve/*` step metrics."""

    def __init__(self, points: int = 8) -> None:
        self.points = check_number("curve.points", points, low=0, integer=True)
        self.rows: list[dict] = []
        self.steps: set[int] = set()
        self.total = 0  # the optimizer steps the run plans (its LR schedule's length)
        self.examples_per_step = 0  # set by train/job.py (measure.examples_per_step)
        self.last_lr: float | None = None
        self.metrics: dict[str, MeanMetric] = {}  # "val/loss", ... : this callback's own
        # the datamodule's validation loaders, asked for once a fit: a DataLoader's workers
        # start with each new loader
        self.loaders: list | None = None

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = state["rows"]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.total = max(1, int(trainer.estimated_stepping_batches))
        evaluates = trainer.limit_val_batches != 0
        self.steps = set(log_steps(self.total, self.points)) if evaluates else set()

    def has_row(self, step: int) -> bool:
        """Whether the curve has a row at `step` already."""
        return any(r["step"] == step for r in self.rows)

    def lr(self, trainer: pl.Trainer) -> float | None:
        """The learning rate the next step will use."""
        return trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last_lr = self.lr(trainer)
        self.loaders = None  # their workers end with them

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # Under gradient accumulation several batches end at one step: the first is right
        # after the optimizer step.
        if (step not in self.steps or not hasattr(pl_module, "evaluate")
                or self.has_row(step)):
            return
        self._add_row(trainer, self._evaluate(trainer, pl_module))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        fitting = trainer.state.fn == TrainerFn.FITTING  # not the final trainer.validate
        if (hasattr(pl_module, "evaluate") or trainer.sanity_checking or not fitting
                or self.has_row(step)):
            return
        self._add_row(trainer, dict(trainer.callback_metrics))

    def _add_row(self, trainer: pl.Trainer, results: dict) -> None:
        step = trainer.global_step
        results = {k: float(v) for k, v in results.items()}
        row = {"step": step, "progress": step / self.total, "epoch": epochs_seen(trainer),
               "examples_seen": step * self.examples_per_step, "time_s": train_time(trainer),
               "lr": self.lr(trainer),
               "val_loss": results.get("val/loss"), "val_acc": results.get("val/acc"),
               "train_loss": results.get("train_eval/loss"),
               "train_acc": results.get("train_eval/acc")}
        self.rows.append(row)
        for logger in trainer.loggers:
            logger.log_metrics(row_metrics(row), step=step)

    def _evaluate(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict:
        """The module's `evaluate` over the validation loaders, averaged over their examples
        (and the ranks: every rank takes part, as the metrics sync)."""
        was_training = module.training
        module.eval()
        precision = trainer.precision_plugin
        try:
            if self.loaders is None:
                loaders = trainer.datamodule.val_dataloader()
                self.loaders = list(loaders) if isinstance(loaders, list | tuple) else [loaders]
            with (torch.no_grad(), precision.val_step_context(),
                  rng_untouched(module.device)):  # a DataLoader's iterator draws a seed
                for split, loader in zip(EVAL_SPLITS, self.loaders, strict=False):  # 1 or 2
                    for batch in loader:
                        batch = trainer.strategy.batch_to_device(precision.convert_input(batch))
                        for name, value in module.evaluate(batch).items():
                            self._metric(f"{split}/{name}", module.device).update(
                                value, weight=len(batch[1]))
            return {key: metric.compute() for key, metric in self.metrics.items()}
        finally:
            for metric in self.metrics.values():
                metric.reset()
            module.train(was_training)

    def _metric(self, key: str, device: torch.device) -> MeanMetric:
        if key not in self.metrics:
            self.metrics[key] = MeanMetric(nan_strategy="disable").to(device)
        return self.metrics[key]

    def final_rows(self, record: RunRecord) -> list[dict]:
        """The curve with its last row, the final weights as the record measured them, and
        every row's training FLOPs (the record's FLOPs per example x its examples seen)."""
        rows = [r for r in self.rows if r["step"] < (record.steps or 0)]
        if record.steps and record.val_loss is not None:
            rows.append({"step": record.steps, "progress": record.steps / max(1, self.total),
                         "epoch": record.epochs, "examples_seen": record.examples_seen,
                         "time_s": record.time_s, "lr": self.last_lr,
                         "val_loss": record.val_loss, "val_acc": record.val_acc,
                         "train_loss": record.train_loss, "train_acc": record.train_acc})
        return [{**r, "train_flops": training_flops(record.flops_per_example,
                                                    r["examples_seen"])} for r in rows]
