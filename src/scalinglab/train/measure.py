"""Measure one training job: the `RunRecorder` callback fills a `RunRecord`.

Parameters, bytes and forward FLOPs are measured on the built model (FLOPs by
`torch.utils.flop_counter`, which counts matmuls and convolutions: a CNN's FLOPs per example are
far above 2N, so 6ND would be wrong for it). Training FLOPs are 3 x forward x examples seen
(forward + backward ~ 2x forward). The recorder measures; train/run.py writes the record.
"""

import contextlib
import math
import platform
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, Timer
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from torch.utils.flop_counter import FlopCounterMode

from scalinglab.models import count_params
from scalinglab.records import RunRecord


def forward_flops_per_example(model: torch.nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass on one example, counted by torch's flop counter."""
    model = getattr(model, "_orig_mod", model)  # count the eager module, not a compiled one
    dtype = next(model.parameters()).dtype
    if example.is_floating_point():  # e.g. a bf16-true model takes bf16 inputs
        example = example.to(dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example[:1])
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


class PeakMemory:
    """Peak memory of this process during a job: CUDA max allocated, or peak RSS on CPU.

    On Linux, writing 5 to /proc/self/clear_refs resets the RSS high-water mark, so each job of a
    multirun gets its own peak rather than the process's all-time peak.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return
        # Not Linux, or not permitted: the peak is then the process's peak so far.
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_bytes(self) -> int | None:
        if self.cuda:
            return int(torch.cuda.max_memory_allocated())
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None


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


class RunRecorder(pl.Callback):
    """Measures the job and stops it on a non-finite loss. Its `record()` is the run record
    so far; it makes every budget end measured: a job whose budget ends mid-epoch validates
    at its last step (by `trainer.should_stop`, which makes Lightning validate there)."""

    def __init__(self, seed: int, job: dict | None = None, config: dict | None = None,
                 check_every_n_steps: int = 50, job_start: float | None = None) -> None:
        self.seed, self.config = seed, config or {}
        self.job = job or {}  # identity and readable job name
        self.job_start, self.setup_s = job_start, None  # perf_counter when the job began
        self.check_every_n_steps, self.next_check = max(1, check_every_n_steps), 0
        self.diverged: str | None = None
        self.best_val_loss = math.inf
        self.validated_at: int | None = None  # the optimizer step of the last validation
        # the last evaluation's metrics, kept here: trainer.test replaces callback_metrics
        self.metrics: dict[str, float] = {}
        self.size: dict = {}
        self.t0 = self.time_s = None
        self.time_before = 0.0  # training time of earlier attempts, restored from a checkpoint

    # Saved in checkpoints, so a resumed job reports its whole training time and best loss.
    def state_dict(self) -> dict:
        return {"time_s": self.train_time(), "best_val_loss": self.best_val_loss}

    def load_state_dict(self, state: dict) -> None:
        self.time_before, self.best_val_loss = state["time_s"], state["best_val_loss"]

    def train_time(self) -> float:
        elapsed = time.perf_counter() - self.t0 if self.t0 is not None else 0.0
        return self.time_before + elapsed

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model, dm = pl_module.model, trainer.datamodule
        self.memory = PeakMemory(pl_module.device)
        self.memory.reset()
        self.size = {
            "family": getattr(model, "family", None),
            "depth": getattr(model, "depth", None),
            "width": getattr(model, "width", None),
            "params": count_params(model),
            "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "flops_per_example": forward_flops_per_example(model, dm.example()),
            "train_size": len(dm.x_train),
            "data": dm.name,
        }

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.t0 = time.perf_counter()
        if self.job_start is not None:  # job start to first step: data, model, trainer setup
            self.setup_s = self.t0 - self.job_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # A step budget that ends mid-epoch: stopping here makes Lightning validate now.
        if 0 <= trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True
        # Reading the loss forces a device sync, so check every n steps, not every step.
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if trainer.global_step < self.next_check or loss is None:
            return
        self.next_check = trainer.global_step + self.check_every_n_steps
        if not torch.isfinite(loss).item():
            self._diverge(trainer, f"non-finite training loss by step {trainer.global_step}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.time_s = self.train_time()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validated_at = trainer.global_step
        self.metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                        if k.startswith(("val/", "train_eval/"))}
        val_loss = self.metrics.get("val/loss", math.nan)
        if not math.isfinite(val_loss):
            self._diverge(trainer, f"non-finite validation loss at step {trainer.global_step}")
        else:
            self.best_val_loss = min(self.best_val_loss, val_loss)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()
                             if k.startswith("test/")})

    def _diverge(self, trainer: pl.Trainer, reason: str) -> None:
        self.diverged = reason
        trainer.should_stop = True

    def needs_final_validation(self, trainer: pl.Trainer) -> bool:
        """Training ended after its last validation (e.g. the last epoch was not a validation
        epoch): the final weights still need measuring."""
        return (self.diverged is None and trainer.global_step > 0
                and self.validated_at != trainer.global_step and trainer.limit_val_batches != 0)

    def record(self, trainer: pl.Trainer) -> RunRecord:
        """The run record as measured so far (status completed, or diverged)."""
        get = self.metrics.get
        val_loss, train_loss = get("val/loss"), get("train_eval/loss")
        fpe = self.size.get("flops_per_example")
        dm = trainer.datamodule
        # Every batch is one GLOBAL batch (equal shards, last partial batch dropped).
        batches = dm.train_batches.batches_seen() if dm.train_batches is not None else 0
        examples_seen = batches * dm.batch_size
        per_epoch = len(dm.train_batches) if dm.train_batches is not None else 0
        time_s = self.time_s if self.time_s is not None else (
            self.train_time() if self.t0 is not None else None)
        return RunRecord(
            status="diverged" if self.diverged else "completed",
            reason=self.diverged,
            stop_reason="diverged" if self.diverged else stop_reason(trainer),
            **self.job,
            **self.size,
            train_flops=3 * fpe * examples_seen if fpe is not None else None,
            examples_seen=examples_seen,
            budget_flops=(self.config.get("budget") or {}).get("flops"),
            budget_examples=(self.config.get("budget") or {}).get("examples"),
            steps=trainer.global_step,
            epochs=batches / per_epoch if per_epoch else 0.0,
            seed=self.seed,
            val_loss=val_loss,
            val_acc=get("val/acc"),
            train_loss=train_loss,
            train_acc=get("train_eval/acc"),
            test_loss=get("test/loss"),
            test_acc=get("test/acc"),
            best_val_loss=self.best_val_loss if math.isfinite(self.best_val_loss) else None,
            train_val_gap=None if None in (val_loss, train_loss) else val_loss - train_loss,
            time_s=time_s,
            setup_s=self.setup_s,
            throughput=examples_seen / time_s if time_s else None,
            peak_mem_bytes=self.memory.peak_bytes() if hasattr(self, "memory") else None,
            world_size=trainer.world_size,
            strategy=type(trainer.strategy).__name__,
            cluster_env=cluster_env(trainer),
            device=str(trainer.strategy.root_device),
            precision=str(trainer.precision),
            config=self.config,
            versions={"python": platform.python_version(), "torch": torch.__version__,
                      "lightning": pl.__version__},
        )
