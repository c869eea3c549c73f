from scalinglab.callbacks.run_record import RunRecorder

__all__ = ["RunRecorder"]
