from scalinglab.callbacks.run_record import RunRecorder
from scalinglab.callbacks.wandb_summary import WandbSummary

__all__ = ["RunRecorder", "WandbSummary"]
