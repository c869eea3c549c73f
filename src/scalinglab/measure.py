"""What a job measures of its model, its data and its trainer: forward FLOPs, examples seen,
training time, peak memory. Plain functions over public state (the trainer's loaders, a
loader's `dataset` and `batch_size`), shared by the job's build and its callbacks, so each
quantity has one definition, for any datamodule.

FLOPs are counted by `torch.utils.flop_counter`, which counts matmuls and convolutions: a CNN's
FLOPs per example are far above 2N, so 6ND would be wrong for it. Training FLOPs are
3 x forward x examples seen (forward + backward ~ 3 forward).
"""

import contextlib
import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Timer
from torch.utils.flop_counter import FlopCounterMode

from scalinglab import ConfigError


@contextlib.contextmanager
def rng_untouched(device: torch.device | None = None):
    """Measure without moving the random state training draws from: the CPU's and, on a GPU,
    that device's. A DataLoader's iterator draws a seed from it, augmentation on the device
    draws there; a measurement must not shift the shuffles and dropout masks that follow."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def forward_flops_per_example(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass of `model` on one example, the first of the batch `x`,
    counted by torch's flop counter (in eval mode, without gradients: dropout and autograd
    change no FLOPs)."""
    param = next(model.parameters())
    example = x[:1].to(param.device)
    if example.is_floating_point():
        example = example.to(param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def training_flops(flops_per_example: int | None, examples: int) -> float | None:
    """Forward and backward FLOPs of training on `examples` examples."""
    return None if flops_per_example is None else 3 * flops_per_example * examples


def batch_size(loader) -> int:
    """Examples in one batch of a training loader (on one rank): a DataLoader's `batch_size`,
    or its batch sampler's."""
    size = getattr(loader, "batch_size", None)
    if size is None and getattr(loader, "batch_sampler", None) is not None:
        size = getattr(loader.batch_sampler, "batch_size", None)
    if size is None:
        raise ConfigError(f"data: cannot tell the batch size of a {type(loader).__name__}: "
                          "give the training loader a `batch_size`, as a DataLoader has")
    return int(size)


def dataset_size(loader) -> int | None:
    """Examples in a loader's dataset (`len(loader.dataset)`); None when it has no length (an
    iterable dataset)."""
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def examples_per_step(loader, world_size: int, accumulate_grad_batches: int) -> int:
    """Examples one optimizer step trains on: a batch on every rank, `accumulate_grad_batches`
    times (a last partial batch of an epoch counts as a whole one). A job's examples seen are
    its optimizer steps x this, counted once when the job is built (train/job.py)."""
    return batch_size(loader) * world_size * accumulate_grad_batches


def epochs_seen(trainer: pl.Trainer) -> float:
    """Epochs trained, fractional when a budget ends mid-epoch."""
    per_epoch = trainer.num_training_batches
    if not per_epoch or not math.isfinite(per_epoch):
        return 0.0
    return trainer.global_step * trainer.accumulate_grad_batches / per_epoch


def train_time(trainer: pl.Trainer) -> float | None:
    """Seconds of training so far, the validations inside `fit` and earlier attempts of a
    resumed job included: Lightning's Timer, which every job's trainer has (train/job.py).
    None on a trainer without one."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    return None if timer is None else timer.time_elapsed("train")


def training_state_bytes(model: torch.nn.Module, optimizers) -> int:
    """Bytes the model and its training state hold: the parameters, a gradient for each
    trainable one, and the optimizers' state tensors (AdamW: two moments). Activations are not
    in it; on a CPU this is the figure that grows with the model, as the process's RSS is
    mostly torch itself."""
    params = list(model.parameters())
    size = sum(p.numel() * p.element_size() for p in params)
    size += sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    return size + sum(t.numel() * t.element_size() for opt in optimizers
                      for state in opt.state.values() for t in state.values()
                      if isinstance(t, torch.Tensor))


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
