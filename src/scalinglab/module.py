"""The LightningModule: cross-entropy classification around any `nn.Module`.

AdamW with linear warmup then cosine decay, sized to the run's own number of optimizer steps
(a schedule longer than the run inflates the loss of small budgets and biases the fitted law).

Each `training_step` call runs optimizer steps on the epoch's next batches for `call_ms` of wall
time: Lightning's per-call machinery (~0.5 ms on a CPU) costs as much as a small model's whole
step, and a scaling study trains many small models. The batches, the updates and so the
results are the same for any `call_ms`; `call_ms=0` is one step per call, Lightning's rhythm.
"""

import math
import time
from collections.abc import Iterator

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.precision import HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from scalinglab import ConfigError

EVAL_SPLITS = ("val", "train_eval")  # the order of the datamodule's val loaders


class Classifier(pl.LightningModule):
    def __init__(self, model: nn.Module, num_classes: int, lr: float = 1e-3,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 warmup_frac: float = 0.05, min_lr_ratio: float = 0.0,
                 log_every_n_steps: int = 50, call_ms: float = 50.0,
                 gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm") -> None:
        super().__init__()
        if lr <= 0:
            raise ConfigError(f"module.lr must be > 0, got {lr}")
        if not 0.0 <= warmup_frac < 1.0:
            raise ConfigError(f"module.warmup_frac must be in [0, 1), got {warmup_frac}")
        # With model.compile the compiled wrapper runs the steps, but only the eager module is a
        # submodule: checkpoints keep the same keys with and without compile and resume each other.
        self.model = getattr(model, "_orig_mod", model)
        self.__dict__["run_model"] = model
        self.lr, self.weight_decay, self.betas = lr, weight_decay, tuple(betas)
        self.warmup_frac, self.min_lr_ratio = warmup_frac, min_lr_ratio
        self.log_every_n_steps = log_every_n_steps
        if call_ms < 0:
            raise ConfigError(f"module.call_ms must be >= 0, got {call_ms}")
        self.call_s = call_ms / 1000
        # Lightning's Trainer(gradient_clip_val=...) is for its automatic loop; train.build
        # hands those settings over to us, and clip_gradients applies them the same way.
        self.gradient_clip_val, self.gradient_clip_algorithm = (gradient_clip_val,
                                                                gradient_clip_algorithm)
        self.automatic_optimization = False  # training_step runs the optimizer steps itself
        self.plain_steps = self.one_step_calls = False  # set in on_train_start
        self.global_batch = 0  # examples per optimizer step, all ranks together
        self.eval_loss = nn.ModuleList(MeanMetric() for _ in EVAL_SPLITS)
        self.eval_acc = nn.ModuleList(MulticlassAccuracy(num_classes, average="micro")
                                      for _ in EVAL_SPLITS)

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets `_current_fx_name` twice for every hook it calls, ~47 times a step;
        # nn.Module.__setattr__'s parameter/module/buffer checks cost ~3 us each time. The
        # value is always a string or None, which nn.Module would store the same way.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.run_model(x)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        # Our batches already live on the device (data/tensors.py); Lightning's generic
        # collection walk costs ~0.3 ms a batch, more than a tiny model's step.
        if all(t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_train_start(self) -> None:
        trainer = self.trainer
        self.global_batch = trainer.datamodule.batch_size  # global: data/tensors.py
        # One step a call under DDP (each backward needs its own forward through DDP's wrapper)
        # and with validation every n batches (val_check_interval), which Lightning counts in calls.
        every = trainer.val_check_batch
        self.one_step_calls = trainer.world_size > 1 or (
            isinstance(every, int) and every != trainer.num_training_batches)
        # manual_backward and LightningOptimizer.step dispatch Lightning's step-level hooks to
        # every callback and the module (~0.15 ms a step on a CPU). Where nothing implements
        # them and neither the strategy nor the precision adds to the step (one device, no loss
        # scaling), plain backward() and step() are the same computation.
        hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
        self.plain_steps = (
            type(trainer.strategy) is SingleDeviceStrategy
            and type(trainer.precision_plugin) in (Precision, MixedPrecision, HalfPrecision)
            and getattr(trainer.precision_plugin, "scaler", None) is None
            and not any(is_overridden(hook, self, pl.LightningModule)
                        for hook in (*hooks, "backward"))
            and not any(is_overridden(hook, callback, pl.Callback)
                        for callback in trainer.callbacks for hook in hooks))

    def training_step(self, dataloader_iter: Iterator) -> Tensor | None:
        """Optimizer steps on the epoch's next batches for `call_ms`; returns their mean loss."""
        opt, sched, trainer = self.optimizers(), self.lr_schedulers(), self.trainer
        last_step = trainer.max_steps if trainer.max_steps >= 0 else math.inf
        deadline = time.perf_counter() + self.call_s
        losses = []
        for (x, y), _, _ in dataloader_iter:
            loss = F.cross_entropy(self.run_model(x), y)
            opt.zero_grad(set_to_none=True)
            if self.plain_steps:
                loss.backward()
            else:
                self.manual_backward(loss)
            if self.gradient_clip_val:
                self.clip_gradients(opt, self.gradient_clip_val, self.gradient_clip_algorithm)
            if self.plain_steps:  # with Lightning's own step counting around it, as in opt.step()
                opt._on_before_step()
                opt.optimizer.step()
                opt._on_after_step()
            else:
                opt.step()
            sched.step()
            losses.append(loss.detach())
            step = self.global_step
            if step % self.log_every_n_steps == 0:
                self._log_train(loss, step, sched.get_last_lr()[0])
            if (self.one_step_calls or dataloader_iter.done or step >= last_step
                    or time.perf_counter() > deadline):
                break
        return torch.stack(losses).mean() if losses else None

    def _log_train(self, loss: Tensor, step: int, lr: float) -> None:
        # Straight to the loggers, at exactly every n-th step: Lightning flushes step metrics
        # on its own count of calls, and a call here is many steps.
        metrics = {"train/loss": loss.item(), "train/lr": lr,
                   "trainer/examples_seen": float(step * self.global_batch)}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        x, y = batch
        logits = self.run_model(x)
        self.eval_loss[dataloader_idx].update(F.cross_entropy(logits, y), weight=len(y))
        self.eval_acc[dataloader_idx].update(logits, y)

    def on_validation_epoch_end(self) -> None:
        for split, loss, acc in zip(EVAL_SPLITS, self.eval_loss, self.eval_acc, strict=True):
            self.log(f"{split}/loss", loss.compute(), sync_dist=False)
            self.log(f"{split}/acc", acc.compute(), sync_dist=False)
            loss.reset()
            acc.reset()
        # W&B plots every metric against examples seen (the global batch times the step);
        # "step" sets the loggers' step to the optimizer step, not Lightning's count of calls.
        self.log("trainer/examples_seen", float(self.global_step * self.global_batch))
        self.log_dict({"step": float(self.global_step), "epoch": float(self.current_epoch)})

    # The RNG state travels with checkpoints so that a resumed run draws the same dropout masks
    # as an uninterrupted one (Lightning does not save it).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_state"] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state")
        if state:
            torch.set_rng_state(state["cpu"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])

    def configure_optimizers(self):
        decay = [p for p in self.parameters() if p.ndim >= 2]  # no weight decay on biases
        no_decay = [p for p in self.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": self.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        # fused: one kernel for all parameters instead of a Python loop over them
        opt = torch.optim.AdamW(groups, lr=self.lr, betas=self.betas, fused=True)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup_frac * total)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            cosine = 0.5 * (1 + math.cos(math.pi * progress))
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
