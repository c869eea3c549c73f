"""The LightningModules around any `nn.Module`: `Classifier` (cross-entropy, `module=classifier`),
`Regressor` (mean squared error, `module=regressor`) and `LanguageModel` (next-token
cross-entropy, `module=lm`), one task each on a shared `Task`.

Lightning's own loop runs them: one batch per `training_step`, automatic optimization, the
scheduler stepped by Lightning (`interval: step`), so every Trainer flag and callback works as a
Lightning user expects. Evaluation logs torchmetrics objects, which Lightning computes, syncs
across DDP ranks and resets. AdamW with linear warmup then cosine decay, sized to the run's own
number of optimizer steps (a schedule longer than the run inflates the loss of small budgets and
biases the fitted law).

What the rest of scalinglab relies on is small, and your own LightningModule can meet it
(docs/reference.md, "Your own model, data and task"): it takes the model as its `model`
argument and logs `val/loss` (optionally `val/acc`, `train_eval/*` and `test/*`) in its
evaluation steps. `evaluate(batch)` is optional: with it, the learning curve evaluates at
log-spaced steps.
"""

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from scalinglab import ConfigError, check_number
from scalinglab.models.parametrization import param_groups

EVAL_SPLITS = ("val", "train_eval")  # the order of the datamodule's val loaders
SPLITS = (*EVAL_SPLITS, "test")  # test: the test loader (data.val_from_train), once at the end


# The RNG state travels with checkpoints so that a resumed run draws the same dropout masks as
# an uninterrupted one (Lightning does not save it).
def save_rng(checkpoint: dict) -> None:
    """The random state into a checkpoint (a LightningModule's `on_save_checkpoint`)."""
    checkpoint["rng_state"] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()


def load_rng(checkpoint: dict) -> None:
    """The random state back from a checkpoint (`on_load_checkpoint`)."""
    state = checkpoint.get("rng_state")
    if state:
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def fusable(params) -> bool:
    """Whether AdamW can be fused over `params`: one kernel for all of them instead of a
    Python loop over them."""
    return all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params)


def schedule(opt: torch.optim.Optimizer, trainer: pl.Trainer, warmup_frac: float,
             min_lr_ratio: float) -> dict:
    """`configure_optimizers`' answer: `opt` with linear warmup then cosine decay to
    `min_lr_ratio`, over the run's own optimizer steps, stepped by Lightning every step."""
    total = max(1, int(trainer.estimated_stepping_batches))
    warmup = int(warmup_frac * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return min_lr_ratio + (1 - min_lr_ratio) * cosine

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class Task(pl.LightningModule):
    """The training recipe every task shares; a task defines `loss` and `evaluate`."""

    METRICS: tuple[str, ...] = ("loss",)  # what `evaluate` returns, logged as {split}/{name}

    def __init__(self, model: nn.Module, lr: float = 1e-3,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 warmup_frac: float = 0.05, min_lr_ratio: float = 0.0) -> None:
        super().__init__()
        # The model is an argument, not a hyperparameter: load a checkpoint with
        # Classifier.load_from_checkpoint(path, model=the_same_architecture).
        self.save_hyperparameters(ignore=["model"])
        self.lr = check_number("module.lr", lr, low=0, low_open=True)
        self.weight_decay = check_number("module.weight_decay", weight_decay, low=0)
        self.warmup_frac = check_number("module.warmup_frac", warmup_frac, 0, 1, high_open=True)
        self.min_lr_ratio = check_number("module.min_lr_ratio", min_lr_ratio, 0, 1)
        if isinstance(betas, str) or len(betas) != 2:
            raise ConfigError(f"module.betas must be two numbers, got {betas!r}")
        self.betas = tuple(check_number("module.betas", b, 0, 1, high_open=True) for b in betas)
        self.model = model
        # Means over the examples of an evaluation, weighted by batch size: exact under DDP's
        # unequal shards too. A NaN stays a NaN: a diverged run must read as one.
        self.metrics = nn.ModuleDict({split: nn.ModuleDict({
            m: MeanMetric(nan_strategy="disable") for m in self.METRICS})
                                      for split in SPLITS})

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def evaluate(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """The batch's mean metrics, `METRICS` (also what the learning curve evaluates)."""
        raise NotImplementedError

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = self.loss(self(x), y)
        # Only on the steps Lightning sends to the loggers (every `log_every_n_steps`-th):
        # each self.log call costs ~0.4 ms on a CPU, as much as a small model's whole step.
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log_dict({"train/loss": loss.detach(),
                           "train/lr": self.trainer.optimizers[0].param_groups[0]["lr"]},
                          on_step=True, on_epoch=False)
        return loss

    def _log_evaluation(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        for name, value in self.evaluate(batch).items():
            metric = self.metrics[split][name]
            metric.update(value, weight=len(batch[1]))
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True,
                     add_dataloader_idx=False)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        self._log_evaluation(batch, EVAL_SPLITS[dataloader_idx])

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._log_evaluation(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        save_rng(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        load_rng(checkpoint)

    def configure_optimizers(self):
        # No weight decay on biases; under muP, per-layer LRs (models/parametrization.py).
        groups = param_groups(self.model, self.lr, self.weight_decay)
        opt = torch.optim.AdamW(groups, lr=self.lr, betas=self.betas,
                                fused=fusable(self.parameters()))
        return schedule(opt, self.trainer, self.warmup_frac, self.min_lr_ratio)


class Classifier(Task):
    """Cross-entropy classification: `val/loss` and `val/acc`."""

    METRICS = ("loss", "acc")

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(output, y)

    def evaluate(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        logits = self(x)
        return {"loss": F.cross_entropy(logits.float(), y),
                "acc": (logits.argmax(-1) == y).float().mean()}


class Regressor(Task):
    """Mean squared error against real-valued targets: `val/loss` only, no accuracy."""

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(output.float().view_as(y), y.float())

    def evaluate(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        return {"loss": self.loss(self(x), y)}


class LanguageModel(Task):
    """Next-token prediction: logits (batch, time, vocabulary) against the next tokens (batch,
    time). `val/loss` is nats per token, `val/bpb` bits per byte (`bytes_per_token`: 1 for
    byte-level text), `val/acc` next-token accuracy."""

    METRICS = ("loss", "acc", "bpb")

    def __init__(self, model: nn.Module, bytes_per_token: float = 1.0, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.bytes_per_token = check_number("module.bytes_per_token", bytes_per_token, low=0,
                                            low_open=True)

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]).float(), y.reshape(-1))

    def evaluate(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        return {"loss": loss, "acc": (logits.argmax(-1) == y).float().mean(),
                "bpb": loss / (math.log(2) * self.bytes_per_token)}
