"""Datasets that fit in memory, kept as tensors on the training device.

Batches come from a per-epoch random permutation: no workers, no per-sample collation. A
dataset too large for the device's memory stays in host memory instead (`data.placement=host`,
or `auto` when it would take over half of the GPU's free memory) and each batch is copied to
the device as it is drawn, by the same iterator, so the batches and resumption are the same. Under
DDP each rank takes a disjoint, equal shard of every epoch's permutation (as DistributedSampler
does); the configured batch size is GLOBAL and is split evenly across ranks. The last partial
global batch of an epoch is dropped, so every rank runs the same number of steps.

Validation is on N training examples held out (`val_from_train=N`, seeded by VAL_SEED, never
trained on): what a sweep may choose by. The dataset's held-out split is the test split, measured
once on the final weights and never chosen by. The built-in configs hold examples out by default;
`val_from_train=null` validates on the held-out split itself, and the run says so once.
"""

from collections.abc import Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import TensorDataset

from scalinglab import ConfigError, check_number

PLACEMENTS = ("auto", "device", "host")
VAL_SEED = 0  # which training examples validate: one fixed choice, whatever the run's seeds


def fits(nbytes: int, free_bytes: int | None) -> bool:
    """`placement=auto`: on the device when the data takes under half its free memory; `None`
    free bytes is the CPU, where the data is in host memory anyway."""
    return free_bytes is None or nbytes < 0.5 * free_bytes


def free_bytes(device: torch.device) -> int | None:
    """The device's free memory; None for the CPU."""
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """One rank's share of the global `data.batch_size`."""
    if batch_size % world_size:
        raise ConfigError(f"data.batch_size={batch_size} is global and must divide evenly "
                          f"across {world_size} processes")
    return batch_size // world_size


class DeviceBatches:
    """An epoch iterator over tensors already on the device.

    Training batches come from a per-epoch permutation (seeded by the epoch, the same on every
    rank; each rank takes its stride, as DistributedSampler does). It is resumable through
    Lightning's `state_dict` / `load_state_dict` interface: the state is the epoch and how many
    of its batches training has taken, so a run resumed from any checkpoint, even mid-epoch,
    continues with exactly the batches it would have seen.

    `group`: the epoch's batches are a whole number of groups (trainer.accumulate_grad_batches),
    so k accumulated batches are exactly one batch k times larger.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, group: int = 1,
                 transform: Callable[[Tensor], Tensor] | None = None,
                 device: torch.device | None = None) -> None:
        self.x, self.y, self.transform, self.device = x, y, transform, device
        self.dataset = TensorDataset(x, y)  # what a DataLoader exposes: its examples
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.group = rank, world_size, group
        self.epoch, self.taken = -1, 0  # the current epoch; batches of it handed to training
        self._resume: tuple[int, int] | None = None

    def __len__(self) -> int:
        if self.shuffle:  # training: drop the last partial global batch (and group)
            groups = len(self.x) // (self.batch_size * self.world_size * self.group)
            return groups * self.group
        return -(-len(self.x) // self.batch_size)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        self._resume = (state["epoch"], state["taken"])

    def __iter__(self):
        if not self.shuffle:
            yield from self._batches(range(0, len(self.x), self.batch_size))
            return
        if self._resume is not None:  # first epoch after a checkpoint restore
            (self.epoch, self.taken), self._resume = self._resume, None
            if self.taken >= len(self):  # saved at an epoch's end: the next epoch starts
                self.epoch, self.taken = self.epoch + 1, 0
        else:
            self.epoch, self.taken = self.epoch + 1, 0
        steps, n = len(self), len(self.x)
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=g).to(self.x.device)
        order = order[: steps * self.batch_size * self.world_size]
        order = order.view(steps, self.world_size, self.batch_size)[self.taken:, self.rank]
        for batch in self._batches(order):
            # Lightning asks a sized loader for each batch as training takes it (no prefetch).
            self.taken += 1
            yield batch

    def _batches(self, index):
        for idx in index:
            if isinstance(idx, int):
                x, y = self.x[idx: idx + self.batch_size], self.y[idx: idx + self.batch_size]
            else:
                x, y = self.x[idx], self.y[idx]
            if self.device is not None and self.device != x.device:  # host placement
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield (x if self.transform is None else self.transform(x)), y


class MemberBatches:
    """The training batches of K packed members (`pack=[seed]`, train/pack.py): each member's
    own DeviceBatches, in the order its own seed gives, stacked into (K, batch, ...) tensors."""

    def __init__(self, members: list[DeviceBatches]) -> None:
        self.members = members
        self.dataset, self.batch_size = members[0].dataset, members[0].batch_size

    def __len__(self) -> int:
        return len(self.members[0])

    def state_dict(self) -> dict:
        return {"members": [m.state_dict() for m in self.members]}

    def load_state_dict(self, state: dict) -> None:
        for member, own in zip(self.members, state["members"], strict=True):
            member.load_state_dict(own)

    def __iter__(self):
        for batches in zip(*self.members, strict=True):
            xs, ys = zip(*batches, strict=True)
            yield torch.stack(xs), torch.stack(ys)


class TensorDataModule(pl.LightningDataModule):
    """Base for in-memory datasets. Subclasses set `input_shape`, `num_classes` (or override
    `num_outputs`, for regression), `train_pool` (how many training examples exist) and
    implement `load()`. Data stored compactly (uint8 images) defines `train_transform` /
    `eval_transform`, applied on the device per batch."""

    name = "tensors"
    input_shape: tuple[int, ...]
    num_classes: int
    train_pool: int | None  # None: unlimited (generated on demand)
    train_transform: Callable[[Tensor], Tensor] | None = None
    eval_transform: Callable[[Tensor], Tensor] | None = None

    def __init__(self, batch_size: int = 128, train_size: int | None = None,
                 eval_batch_size: int = 1024, subset_seed: int = 0,
                 data_dir: str = "data", placement: str = "auto",
                 val_from_train: int | None = None) -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ConfigError(f"data.placement must be one of {PLACEMENTS}, got {placement!r}")
        batch_size = check_number("data.batch_size", batch_size, low=1, integer=True)
        eval_batch_size = check_number("data.eval_batch_size", eval_batch_size, low=1,
                                       integer=True)
        if train_size is not None:
            train_size = check_number("data.train_size", train_size, low=1, integer=True)
        pool = self.train_pool
        if val_from_train is not None:
            val_from_train = check_number("data.val_from_train", val_from_train, low=1,
                                          integer=True)
            if pool is None:
                raise ConfigError(f"data.val_from_train: {self.name} draws its own validation "
                                  "set (data.val_size)")
            if val_from_train >= pool:
                raise ConfigError(f"data.val_from_train={val_from_train} leaves none of the "
                                  f"{pool} training examples of {self.name} to train on")
            pool -= val_from_train
        if train_size is not None and pool is not None and train_size > pool:
            raise ConfigError(f"data.train_size={train_size} is larger than the {pool} "
                              f"training examples of {self.name}")
        self.val_from_train = val_from_train
        # for the record (data_info): which examples validate; a subclass may have set its own
        validation = (f"{val_from_train} training examples held out (seed {VAL_SEED})"
                      if val_from_train else "the dataset's validation split")
        self.info = {**getattr(self, "info", {}), "validation": validation}
        self.batch_size, self.train_size = batch_size, train_size
        self.eval_batch_size, self.subset_seed = eval_batch_size, subset_seed
        self.data_dir, self.placement = data_dir, placement
        self.device: torch.device = torch.device("cpu")  # where training runs
        self.x_train = self.y_train = self.x_val = self.y_val = None
        self.x_test = self.y_test = None  # with val_from_train, or a dataset's own test split
        self.train_batches: DeviceBatches | MemberBatches | None = None
        self.member_seeds: list[int] | None = None  # a pack's members' seeds (train/pack.py)
        self._train_state: dict | None = None  # the train loader's, from a checkpoint
        self._prepared: tuple[Tensor, ...] | None = None

    @property
    def num_outputs(self) -> int:
        """The model's outputs: one per class."""
        return self.num_classes

    def load(self) -> tuple[Tensor, ...]:
        """Return (x_train, y_train, x_val, y_val) as CPU tensors, and (x_test, y_test) after
        them for a dataset that holds out a test split of its own."""
        raise NotImplementedError

    def prepare_data(self) -> None:
        # Generates and caches (or downloads) once, on rank 0, before the ranks set up. This
        # process keeps what it read, so its setup does not read it a second time; once set
        # up (train/job.py sets the data up as it builds the job), there is nothing to do.
        if self.x_train is None:
            self._prepared = self.load()

    def setup(self, stage: str | None = None) -> None:
        if self.x_train is not None:
            return
        x_train, y_train, x_val, y_val, *test = self._prepared or self.load()
        self._prepared = None
        x_test, y_test = test or (None, None)  # a dataset with a test split of its own
        if self.val_from_train is None and x_test is None and self.train_pool is not None:
            self.info["validation"] = "the test split (data.val_from_train=null)"
            rank_zero_warn(f"{self.name}: validation is the test split (data.val_from_train="
                           "null): early stopping, checkpoints and any choice made from val_* "
                           "see the test data; data.val_from_train=N holds N training "
                           "examples out instead")
        if self.val_from_train is not None:
            x_test, y_test = x_val, y_val
            g = torch.Generator().manual_seed(VAL_SEED)
            val = torch.zeros(len(x_train), dtype=torch.bool)
            val[torch.randperm(len(x_train), generator=g)[: self.val_from_train]] = True
            x_val, y_val = x_train[val], y_train[val]
            x_train, y_train = x_train[~val], y_train[~val]
        if self.train_size is not None:
            # A fixed permutation, independent of the training seed: for one subset_seed, a
            # smaller train_size is always a subset of a larger one (nested data axis).
            g = torch.Generator().manual_seed(self.subset_seed)
            keep = torch.randperm(len(x_train), generator=g)[: self.train_size]
            x_train, y_train = x_train[keep], y_train[keep]
        self.device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        nbytes = sum(t.nbytes for t in (x_train, y_train, x_val, y_val, x_test, y_test)
                     if t is not None)
        on_device = (self.placement == "device" or self.placement == "auto"
                     and fits(nbytes, free_bytes(self.device)))
        home = self.device if on_device else torch.device("cpu")
        self.x_train, self.y_train = x_train.to(home), y_train.to(home)
        self.x_val, self.y_val = x_val.to(home), y_val.to(home)
        if x_test is not None:
            self.x_test, self.y_test = x_test.to(home), y_test.to(home)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        # Our batches already live on the device (DeviceBatches); Lightning's generic
        # collection walk costs ~0.3 ms a batch, more than a tiny model's step.
        if all(t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer else 1

    def per_rank_batch(self) -> int:
        return per_rank_batch(self.batch_size, self.world_size)

    def train_dataloader(self) -> DeviceBatches:
        rank = self.trainer.global_rank if self.trainer else 0
        group = self.trainer.accumulate_grad_batches if self.trainer else 1
        seeds = self.member_seeds or [torch.initial_seed()]  # follows seed_everything(cfg.seed)
        loaders = [DeviceBatches(self.x_train, self.y_train, self.per_rank_batch(), True,
                                 seed % (2**31), rank, self.world_size, group,
                                 self.train_transform, self.device) for seed in seeds]
        self.train_batches = MemberBatches(loaders) if self.member_seeds else loaders[0]
        if self._train_state is not None:
            self.train_batches.load_state_dict(self._train_state)
        if len(self.train_batches) == 0:
            raise ConfigError(f"data.batch_size={self.batch_size} x "
                              f"trainer.accumulate_grad_batches={group} is larger than the "
                              f"{len(self.x_train)} training examples")
        return self.train_batches

    # The train loader's position also travels as the datamodule's state. Lightning restores a
    # loader's own state only if it builds the loader after restoring the checkpoint, and
    # configure_optimizers' `trainer.estimated_stepping_batches` builds it before; the
    # datamodule's state is restored first of all.
    def state_dict(self) -> dict:
        return {"train_batches": self.train_batches.state_dict()} if self.train_batches else {}

    def load_state_dict(self, state: dict) -> None:
        self._train_state = state.get("train_batches")

    def val_dataloader(self) -> list[DeviceBatches]:
        # Two loaders: held-out data, and as many training examples evaluated the same way,
        # so the train-val gap compares like with like (eval mode, no dropout).
        # Under DDP each rank evaluates its own strided shard; the metrics reduce across ranks.
        n = min(len(self.x_train), len(self.x_val))
        r, w = (self.trainer.global_rank if self.trainer else 0), self.world_size
        return [DeviceBatches(self.x_val[r::w], self.y_val[r::w], self.eval_batch_size, False,
                              transform=self.eval_transform, device=self.device),
                DeviceBatches(self.x_train[:n][r::w], self.y_train[:n][r::w],
                              self.eval_batch_size, False, transform=self.eval_transform,
                              device=self.device)]

    @property
    def has_test_split(self) -> bool:
        """A test split apart from validation: the held-out split with val_from_train, or the
        dataset's own."""
        return self.x_test is not None

    def test_dataloader(self) -> DeviceBatches:
        """The test split: the dataset's held-out one when training examples validate
        (val_from_train), or the dataset's own."""
        r, w = (self.trainer.global_rank if self.trainer else 0), self.world_size
        return DeviceBatches(self.x_test[r::w], self.y_test[r::w], self.eval_batch_size, False,
                             transform=self.eval_transform, device=self.device)
