"""The RunRecorder callback: measures a job into its `RunRecord`, logs the axis every metric is
plotted against (examples seen), and stops the job on a non-finite loss. It measures;
train/run.py writes the record (records/io.py). What it reads of the LightningModule is only
what the module logs: `val/loss` (required), `val/acc`, `train_eval/*` and `test/*`."""

import logging
import math
import platform
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, Timer
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

from scalinglab import ConfigError
from scalinglab.measure import (
    PeakMemory,
    epochs_seen,
    train_time,
    training_flops,
    training_state_bytes,
)
from scalinglab.records.schema import CONFIG_KEYS, RunRecord

log = logging.getLogger("scalinglab")


def cluster_env(trainer: pl.Trainer) -> str | None:
    """Who started the ranks: SLURMEnvironment (SLURM's tasks), LightningEnvironment (our
    launcher); None for a single-device run."""
    env = getattr(trainer.strategy, "cluster_environment", None)
    return type(env).__name__ if env is not None else None


def stop_reason(trainer: pl.Trainer) -> str:
    """What ended training: the budget that ran out, or the callback that stopped it."""
    for callback in trainer.callbacks:
        if (isinstance(callback, EarlyStopping)
                and callback.stopping_reason != EarlyStoppingReason.NOT_STOPPED):
            return f"early_stopping: {callback.stopping_reason_message}"
    if 0 <= trainer.max_steps <= trainer.global_step:
        return "max_steps"
    timers = [c.time_remaining() for c in trainer.callbacks if isinstance(c, Timer)]
    if any(left is not None and left <= 0 for left in timers):
        return "max_time"
    if trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch:
        return "max_epochs"
    return "stopped by a callback" if trainer.should_stop else "unknown"


def hyperparams(record: RunRecord) -> dict:
    """What a job gives its loggers as hyperparameters: its config, and the record's config
    keys (size, data, seed) to filter and group by."""
    values = record.to_dict()
    return {"scalinglab": record.config, **{k: values.get(k) for k in CONFIG_KEYS}}


class RunRecorder(pl.Callback):
    """Measures the job: its size (set by train/job.py when it builds the model; given to every
    logger as hyperparameters when fitting starts, to filter and group by), the metrics of its
    last evaluation, its time, memory and throughput. `record()` is the run record so far;
    `validated_at` says whether the final weights were measured (train/job.py validates them
    when they were not)."""

    def __init__(self, job: dict, config: dict, check_every_n_steps: int = 50,
                 job_start: float | None = None) -> None:
        self.job, self.config = job, config  # identity, name and overrides; resolved config
        self.job_start, self.setup_s = job_start, None  # time.monotonic() when the job began
        self.check_every_n_steps, self.next_check = max(1, check_every_n_steps), 0
        self.diverged: str | None = None
        self.best_val_loss = math.inf
        self.validated_at: int | None = None  # the optimizer step of the last validation
        # the last evaluation's metrics, kept here: trainer.test replaces callback_metrics
        self.metrics: dict[str, float] = {}
        # family, depth, width, params, param_bytes, flops_per_example (counted once),
        # train_size, data: what train/job.py measured when it built the job, and the
        # examples one optimizer step takes (measure.examples_per_step)
        self.size: dict = {}
        self.examples_per_step = 0
        self.memory: PeakMemory | None = None
        self.state_bytes: int | None = None  # measured when training ends
        self.resumed = False

    # Saved in checkpoints, so a resumed job reports its best loss over every attempt.
    def state_dict(self) -> dict:
        return {"best_val_loss": self.best_val_loss}

    def load_state_dict(self, state: dict) -> None:
        self.best_val_loss, self.resumed = state["best_val_loss"], True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.memory = PeakMemory(pl_module.device)
        self.memory.reset()
        for logger in trainer.loggers:
            logger.log_hyperparams(hyperparams(self.record(trainer)))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.job_start is not None:  # job start to first step: data, model, trainer setup
            self.setup_s = time.monotonic() - self.job_start
        if self.resumed:  # every rank's own line (its own log file under DDP)
            log.info("resuming from %s at step %d", trainer.ckpt_path, trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state_bytes = training_state_bytes(pl_module, trainer.optimizers)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # W&B plots every metric against examples seen. The optimizer step is `trainer/step`: a
        # metric named "step" would override Lightning's own (ModelCheckpoint's "{step}").
        # Logged only on the steps Lightning sends to the loggers: each call costs ~0.4 ms.
        every, step = trainer.log_every_n_steps, trainer.global_step
        if every and step and step % every == 0:
            pl_module.log_dict({"trainer/examples_seen": float(step * self.examples_per_step),
                                "trainer/step": float(step)}, on_step=True, on_epoch=False)
        # Reading the loss forces a device sync, so check every n steps, not every step.
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if trainer.global_step < self.next_check or loss is None:
            return
        self.next_check = trainer.global_step + self.check_every_n_steps
        if not torch.isfinite(loss).item():
            self._diverge(trainer, f"non-finite training loss by step {trainer.global_step}")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The same on every rank; sync_dist only keeps Lightning's epoch-level logging exact.
        if not trainer.sanity_checking:
            step = trainer.global_step
            pl_module.log_dict({"trainer/examples_seen": float(step * self.examples_per_step),
                                "trainer/step": float(step)}, sync_dist=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validated_at = trainer.global_step
        self.take(trainer, self.measured(trainer, pl_module, ("val/", "train_eval/")),
                  trainer.global_step)

    def take(self, trainer: pl.Trainer, metrics: dict[str, float], step: int) -> None:
        """A validation's metrics, of the weights at optimizer step `step`: a non-finite loss
        is a divergence, a finite one may be the best so far."""
        self.metrics = metrics
        if "val/loss" not in self.metrics:
            logged = ", ".join(sorted(trainer.callback_metrics)) or "nothing"
            hint = (", with add_dataloader_idx=False under several val loaders"
                    if "/dataloader_idx_" in logged else "")
            raise ConfigError(f"module: {type(trainer.lightning_module).__name__} logged no "
                              f"'val/loss' in validation (it logged: {logged}); scalinglab "
                              f"measures by it: self.log('val/loss', ...) in validation_step"
                              f"{hint}")
        val_loss = self.metrics["val/loss"]
        if not math.isfinite(val_loss):
            self._diverge(trainer, f"non-finite validation loss at step {step}")
        else:
            self.best_val_loss = min(self.best_val_loss, val_loss)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.metrics.update(self.measured(trainer, pl_module, ("test/",)))

    def measured(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                 splits: tuple[str, ...]) -> dict[str, float]:
        """The metrics the last evaluation logged, of these splits."""
        return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(splits)}

    def _diverge(self, trainer: pl.Trainer, reason: str) -> None:
        self.diverged = reason
        trainer.should_stop = True

    def record(self, trainer: pl.Trainer) -> RunRecord:
        """The run record as measured so far (status completed, or diverged)."""
        get = self.metrics.get
        val_loss, train_loss = get("val/loss"), get("train_eval/loss")
        examples = trainer.global_step * self.examples_per_step
        tokens = self.size.get("tokens_per_example")
        time_s = train_time(trainer) if trainer.global_step else None
        budget = self.config.get("budget") or {}
        return RunRecord(
            status="diverged" if self.diverged else "completed",
            reason=self.diverged,
            stop_reason="diverged" if self.diverged else stop_reason(trainer),
            **self.job,
            **self.size,
            train_flops=training_flops(self.size.get("flops_per_example"), examples),
            examples_seen=examples,
            tokens_seen=None if tokens is None else examples * tokens,
            budget_flops=budget.get("flops"),
            budget_examples=budget.get("examples"),
            steps=trainer.global_step,
            epochs=epochs_seen(trainer),
            seed=self.config.get("seed"),
            val_loss=val_loss,
            val_acc=get("val/acc"),
            train_loss=train_loss,
            train_acc=get("train_eval/acc"),
            test_loss=get("test/loss"),
            test_acc=get("test/acc"),
            val_bpb=get("val/bpb"),
            test_bpb=get("test/bpb"),
            best_val_loss=self.best_val_loss if math.isfinite(self.best_val_loss) else None,
            train_val_gap=None if None in (val_loss, train_loss) else val_loss - train_loss,
            time_s=time_s,
            setup_s=self.setup_s,
            throughput=examples / time_s if time_s else None,
            peak_mem_bytes=self.memory.peak_bytes() if self.memory else None,
            state_bytes=self.state_bytes,
            world_size=trainer.world_size,
            num_nodes=trainer.num_nodes,
            strategy=type(trainer.strategy).__name__,
            cluster_env=cluster_env(trainer),
            device=str(trainer.strategy.root_device),
            precision=str(trainer.precision),
            config=self.config,
            versions={"python": platform.python_version(), "torch": str(torch.__version__),
                      "lightning": pl.__version__},
        )
