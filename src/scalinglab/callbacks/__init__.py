"""The Lightning callbacks every job gets (train/job.py): the run recorder, the learning curve,
preemption under SLURM, the W&B run's layout. Each stands alone: what they share goes through
the trainer (its Timer, its step) or the run record."""
