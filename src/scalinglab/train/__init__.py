"""Training: `scalinglab-train` (cli.py), the run management around each job (run.py), the job
built and fitted (job.py), its W&B run (wandb.py), a quiet terminal (quiet.py).
`python -m scalinglab.train` is `scalinglab-train`."""
