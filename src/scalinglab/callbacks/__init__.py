from scalinglab.callbacks.checkpoint import PeriodicCheckpoint
from scalinglab.callbacks.preemption import Preemption, submitit_signal
from scalinglab.callbacks.run_record import RunRecorder
from scalinglab.callbacks.wandb_summary import WandbSummary

__all__ = ["PeriodicCheckpoint", "Preemption", "RunRecorder", "WandbSummary", "submitit_signal"]
