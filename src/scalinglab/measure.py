"""What a job measures of its model and its trainer: forward FLOPs, examples seen, training time,
peak memory. Plain functions over public Lightning state, shared by the job's build, its
callbacks and the LightningModule, so each quantity has one definition.

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


def forward_flops_per_example(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of `model` on one input of `input_shape`, counted by torch's
    flop counter (in eval mode, without gradients: dropout and autograd change no FLOPs)."""
    param = next(model.parameters())
    example = torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device)
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


def examples_seen(trainer: pl.Trainer, steps: int | None = None) -> int:
    """Examples trained on after `steps` optimizer steps (default: the trainer's so far). Each
    step takes `accumulate_grad_batches` global batches of `data.batch_size` (split across the
    ranks)."""
    steps = trainer.global_step if steps is None else steps
    return steps * trainer.accumulate_grad_batches * trainer.datamodule.batch_size


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
