"""A quiet terminal: each message once, no per-job banners or advertisements.

Hydra's handlers (the console and each job's train.log) print Lightning's log records, so
Lightning's own console handler goes, and the lines it prints for every job that say nothing
about this job (device banners, a product tip, "loading train_dataloader") drop to DEBUG:
they stay in train.log. Warnings that do not apply to how scalinglab drives Lightning are
silenced, each with its reason.
"""

import logging
import re
import warnings

# Lightning's per-job lines that carry no news about the job; DEBUG, not gone.
BANNERS = re.compile(r"^(GPU available|TPU available|HPU available|💡 Tip|LOCAL_RANK: \d+ - |"
                     r"Loading `train_dataloader`|`Trainer\.(fit|validate)` stopped|"
                     r"Initializing distributed|-{10,}|distributed_backend=|All distributed|"
                     r"Restoring states from the checkpoint|Restored all states|"
                     r"`weights_only` was not set)")


class _Banners(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and BANNERS.match(record.getMessage()):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("scalinglab").isEnabledFor(logging.DEBUG)
        return True


def quiet_lightning() -> None:
    import lightning.pytorch  # noqa: F401  (it adds its console handler on import)

    root = logging.getLogger("lightning.pytorch")
    root.handlers.clear()
    root.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.distributed",
                 "lightning.pytorch.accelerators.cuda",
                 "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Banners) for f in logger.filters):
            logger.addFilter(_Banners())
    for message in (
        # a torch deprecation inside Lightning's own code
        r".*isinstance\(treespec, LeafSpec\).*",
        # we log by the optimizer step, across epochs: short epochs still log every n steps
        "The number of training batches .* logging interval",
        # every job fits with ckpt_path="last" (train/job.py); a job's first attempt has no
        # checkpoint yet, which Lightning's docs call "set and forget"
        r'.*fit\(ckpt_path="last"\) is set, but there',
        # a re-run resumes from the job's own checkpoints, which live there
        r"Checkpoint directory .* exists and is not empty",
        # outside SLURM we do not want srun (hydra/launcher=slurm is how jobs get there)
        "The `srun` command is available on your system",
    ):
        warnings.filterwarnings("ignore", message=message)



def quiet_hydra() -> None:
    """Hydra warns at composition when ./conf (train.yaml's searchpath) does not exist: most
    users have none, and that is fine. Before Hydra composes, so without Lightning."""
    warnings.filterwarnings("ignore", message="provider=hydra.searchpath in main, path=conf is")


# At import too: a joblib worker (hydra/launcher=local_parallel) composes each job's config
# before it runs `scalinglab-train`'s main, and it imports this module when it receives the job.
quiet_hydra()
