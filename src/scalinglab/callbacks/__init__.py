"""Lightning callbacks that run management adds to every job."""

from scalinglab.callbacks.preemption import Preemption
from scalinglab.callbacks.wandb_summary import WandbSummary

__all__ = ["Preemption", "WandbSummary"]
