"""The LightningModule: cross-entropy classification around any `nn.Module`.

AdamW with linear warmup then cosine decay, sized to the run's own number of optimizer steps
(a schedule longer than the run inflates the loss of small budgets and biases the fitted law).
"""

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from scalinglab import ConfigError

EVAL_SPLITS = ("val", "train_eval")  # the order of the datamodule's val loaders


class Classifier(pl.LightningModule):
    def __init__(self, model: nn.Module, num_classes: int, lr: float = 1e-3,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 warmup_frac: float = 0.05, min_lr_ratio: float = 0.0,
                 log_every_n_steps: int = 50) -> None:
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

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.cross_entropy(self.run_model(x), y)
        self.global_batch = len(x) * self.trainer.world_size
        # Each self.log costs ~0.4 ms; logging every step would dominate small models.
        if self.global_step % self.log_every_n_steps == 0:
            self.log_dict({"train/loss": loss.detach(), "trainer/examples_seen":
                           float(self.global_step * self.global_batch)})
        return loss

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
        # W&B plots every metric against examples seen (the global batch times the step)
        self.log("trainer/examples_seen", float(self.global_step * self.global_batch))

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
