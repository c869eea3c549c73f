"""K jobs of one model shape trained as one LightningModule (`pack=[...]`, train/pack.py).

`PackedTask` runs one member's Task (its model, `loss` and `evaluate`) on each member's
weights at once with `torch.func.vmap` over `functional_call`, the weights stacked along a
first dimension for each step: one batched step for K small ones, in Lightning's own loop.
The members stay independent. Each keeps its weights as its own tensors, so torch's own AdamW
steps each with its own parameter groups (its learning rate and weight decay, muP's per-layer
rates), exactly as it would alone. Each draws its own dropout masks (vmap's
`randomness="different"`), takes its own batches when its seed differs (data/tensors.py), has
its gradient clipped on its own, and gets its own metrics (`MemberMean`, K values synced across
DDP ranks). A member that diverges is stopped and the others go on.
"""

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torchmetrics import Metric

from scalinglab import ConfigError
from scalinglab.models.parametrization import param_groups
from scalinglab.module import (
    EVAL_SPLITS,
    SPLITS,
    Task,
    fusable,
    load_rng,
    save_rng,
    schedule,
)

# A Task's hooks a pack replaces with its own: a subclass that defines one is refused
REPLACED = ("training_step", "validation_step", "test_step", "configure_optimizers")


class MemberMean(Metric):
    """Each member's mean of a metric over an evaluation's examples, weighted by batch size
    and summed across DDP ranks. A NaN stays a NaN: a diverged member must read as one."""

    full_state_update = False

    def __init__(self, members: int) -> None:
        super().__init__()
        self.add_state("total", torch.zeros(members), dist_reduce_fx="sum")
        self.add_state("weight", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, values: Tensor, weight: int) -> None:
        self.total += values.detach().float() * weight
        self.weight += weight

    def compute(self) -> Tensor:
        return self.total / self.weight


class _Method(nn.Module):
    """A Task's `loss` of a batch or its `evaluate`, as a module's forward, so that
    `functional_call` can run it with a member's parameters."""

    def __init__(self, task: Task, name: str) -> None:
        super().__init__()
        self.task, self.name = task, name

    def forward(self, batch: tuple[Tensor, Tensor]):
        if self.name == "loss":
            x, y = batch
            return self.task.loss(self.task(x), y)
        return self.task.evaluate(batch)


def check_stackable(model: nn.Module) -> None:
    """Only parameters are stacked: a model that keeps buffers (batch-norm's running
    statistics) is refused."""
    name = next((name for name, _ in model.named_buffers()), None)
    if name is not None:
        owner = model.get_submodule(name.rpartition(".")[0])
        raise ConfigError(f"pack: the model keeps state outside its parameters ({name}, a "
                          f"buffer of its {type(owner).__name__}: batch-norm's running "
                          "statistics, say), which packed members cannot keep apart; train "
                          "these jobs unpacked (pack=[])")


class PackedTask(pl.LightningModule):
    """`tasks`: the members' Tasks, one model shape, each with its own weights, `lr` and
    `weight_decay`. `member_batches`: training batches come stacked (K, batch, ...), one per
    member, rather than one batch shared by all."""

    def __init__(self, tasks: list[Task], member_batches: bool = False) -> None:
        super().__init__()
        template = tasks[0]
        if not all(isinstance(t, Task) and type(t) is type(template) for t in tasks):
            raise ConfigError("pack: the module must be one of scalinglab's tasks (module="
                              "classifier, regressor or lm, or a subclass of Task), the same "
                              "for every member")
        own = [h for h in REPLACED if is_overridden(h, template, Task)]
        if own:
            raise ConfigError(f"pack: {type(template).__name__} defines its own {own[0]}, which "
                              "a pack would not run (it runs only the task's loss and "
                              "evaluate); train these jobs unpacked (pack=[])")
        check_stackable(template.model)
        names = [name for name, _ in template.model.named_parameters()]
        shapes = {tuple((n, p.shape) for n, p in t.model.named_parameters()) for t in tasks}
        if len(shapes) != 1:
            raise ConfigError("pack: the members' models differ in shape; pack only keys that "
                              "leave the model as it is")
        # member k's i-th parameter is params[k * len(names) + i]
        self.params = nn.ParameterList(p for t in tasks for p in t.model.parameters())
        # The same tensors as a plain list: slicing a ParameterList builds a new module, which
        # costs more than a tiny model's step. Moves and checkpoint loads keep the tensors.
        self.leaves = list(self.params)
        self.keys = [f"task.model.{n}" for n in names]  # as _Method names them
        self.lrs = [t.lr for t in tasks]
        self.weight_decays = [t.weight_decay for t in tasks]
        self.member_batches = member_batches
        # A tuple, so that PyTorch does not register the template's modules a second time: its
        # parameters are member 0's, already in `params`; its code runs every member.
        self.template = (template,)
        self.calls = {name: _Method(template, name) for name in ("loss", "evaluate")}
        # stopped members, each with its learning rate at its stop (its curve's last); saved
        # in checkpoints
        self.stopped: dict[int, float] = {}
        self._checked: tuple[int, list[bool]] = (-1, [])
        self.metrics = nn.ModuleDict({split: nn.ModuleDict({
            m: MemberMean(len(tasks)) for m in template.METRICS}) for split in SPLITS})
        self.measured: dict[str, Tensor] = {}  # the last evaluation's metrics, K values each

    @property
    def members(self) -> int:
        return len(self.lrs)

    def member_params(self, member: int) -> list[nn.Parameter]:
        """Member `member`'s parameters, in its model's order."""
        n = len(self.keys)
        return self.leaves[member * n:(member + 1) * n]

    def stacked(self) -> tuple[Tensor, ...]:
        """Every parameter of the model with the members' values stacked along dimension 0."""
        n = len(self.keys)
        return tuple(torch.stack(self.leaves[i::n]) for i in range(n))

    def vmapped(self, name: str, batch, stacked: bool):
        """`loss` or `evaluate` of every member: its weights, and its own batch (`stacked`) or
        the one batch all share."""
        def call(params: tuple[Tensor, ...], batch):
            return functional_call(self.calls[name], dict(zip(self.keys, params, strict=True)),
                                   (batch,))

        dims = 0 if stacked else None
        return vmap(call, in_dims=(0, dims), randomness="different")(self.stacked(), batch)

    def evaluate(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Every member's metrics on one shared batch: K values each (the learning curve's)."""
        return self.vmapped("evaluate", tuple(batch), stacked=False)

    def stop(self, member: int) -> None:
        """Stop a member (a diverged one): it takes no more steps. Training ends when none is
        left."""
        self.stopped[member] = self.member_lr(member)
        if len(self.stopped) == self.members:
            self.trainer.should_stop = True

    def nonfinite(self, losses: Tensor) -> list[bool]:
        """Which members' training loss is non-finite on any rank, once a step (every rank
        then stops the same members, and reading the losses syncs the device once)."""
        if self._checked[0] != self.global_step:
            bad = self.trainer.strategy.reduce((~torch.isfinite(losses)).float(),
                                               reduce_op="sum")
            self._checked = (self.global_step, (bad > 0).tolist())
        return self._checked[1]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict:
        losses = self.vmapped("loss", tuple(batch), stacked=self.member_batches)
        # A member's gradient is its own loss's: the parameters are disjoint. A stopped
        # member's loss (NaN, maybe) is left out.
        loss = losses.sum()
        if self.stopped:
            live = [k not in self.stopped for k in range(self.members)]
            loss = torch.where(torch.tensor(live, device=losses.device), losses, 0).sum()
        return {"loss": loss, "losses": losses.detach()}

    def on_train_start(self) -> None:
        if len(self.stopped) == self.members:  # resumed with every member stopped
            self.trainer.should_stop = True

    def on_after_backward(self) -> None:
        # After DDP's all-reduce: a stopped member's parameters get no gradient, so AdamW
        # leaves them as they are (their requires_grad stays, as DDP registered them).
        for member in self.stopped:
            for p in self.member_params(member):
                p.grad = None

    def _update(self, split: str, batch: tuple[Tensor, Tensor]) -> None:
        for name, values in self.evaluate(batch).items():
            self.metrics[split][name].update(values, len(batch[1]))

    def _compute(self, splits: tuple[str, ...]) -> None:
        for split in splits:
            for name, metric in self.metrics[split].items():
                if metric.update_called:
                    self.measured[f"{split}/{name}"] = metric.compute().float().cpu()
                metric.reset()

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(EVAL_SPLITS[dataloader_idx], batch)

    def on_validation_epoch_start(self) -> None:
        self.measured = {}

    def on_validation_epoch_end(self) -> None:
        self._compute(EVAL_SPLITS)

    def test_step(self, batch, batch_idx: int) -> None:
        self._update("test", batch)

    def on_test_epoch_end(self) -> None:
        self._compute(("test",))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        save_rng(checkpoint)
        checkpoint["stopped_members"] = dict(self.stopped)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        load_rng(checkpoint)
        self.stopped = dict(checkpoint["stopped_members"])

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        """`trainer.gradient_clip_val` per member: each member's gradient norm is its own."""
        if not gradient_clip_val or gradient_clip_algorithm == "value":  # elementwise already
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        for member in range(self.members):
            torch.nn.utils.clip_grad_norm_(self.member_params(member), gradient_clip_val)

    def member_lr(self, member: int) -> float:
        """Member `member`'s learning rate for the next step (its first group's, as a job's
        logged rate is)."""
        return self.trainer.optimizers[0].param_groups[self.first_groups[member]]["lr"]

    def configure_optimizers(self):
        # Each member's groups as its own Task makes them (models/parametrization.py), over
        # its own parameters: the template's groups at the member's values, matched up by
        # position in the model.
        # Members with the same values share groups (a seeds-only pack has the groups of one
        # job): fewer groups, fewer optimizer calls a step, the same arithmetic.
        template = self.template[0]
        index = {id(p): i for i, p in enumerate(template.model.parameters())}
        groups: dict[tuple, dict] = {}
        self.first_groups = []
        for member, (lr, wd) in enumerate(zip(self.lrs, self.weight_decays, strict=True)):
            own = self.member_params(member)
            for i, g in enumerate(param_groups(template.model, lr, wd)):
                key = (i, g["lr"], g["weight_decay"])
                if i == 0:
                    self.first_groups.append(list(groups).index(key) if key in groups
                                             else len(groups))
                group = groups.setdefault(key, {**g, "params": []})
                group["params"] += [own[index[id(p)]] for p in g["params"]]
        groups = list(groups.values())
        opt = torch.optim.AdamW(groups, lr=self.lrs[0], betas=template.betas,
                                fused=fusable(self.leaves))
        return schedule(opt, self.trainer, template.warmup_frac, template.min_lr_ratio)
