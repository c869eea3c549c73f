"""`scalinglab-train`: train one model size and record it; `-m` sweeps a grid of sizes.

Hydra composes the config (conf/train.yaml) and runs `main` once per job; the job itself is
train/run.py's. Lightning is imported only once a job runs: the process that launches a sweep
on joblib workers or SLURM never needs it, and a config error Hydra finds costs no import."""

import atexit
import gc
import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from scalinglab.identity import register_resolver as register_identity_resolver
from scalinglab.launch.slots import configure_worker, packs_jobs
from scalinglab.launch.slurm import register_resolver as register_slurm_resolver
from scalinglab.launch.slurm import use_task_cpus
from scalinglab.train.quiet import quiet_hydra, quiet_lightning

log = logging.getLogger("scalinglab")
register_identity_resolver()  # ${job_name:} and ${run_name:}, before Hydra composes
register_slurm_resolver()     # ${slurm_gpus:...}
quiet_hydra()
# At exit the interpreter's last garbage collections walk every object torch and Lightning
# made: ~1 s on a 2-core CPU, in every process (a sweep, each SLURM or worker job). Frozen
# objects are left out of that walk. Every exit handler still runs (W&B's, logging's) and
# records are written and closed by then: only the collections are skipped.
atexit.register(gc.freeze)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    from scalinglab.train.run import run_job, run_pack

    quiet_lightning()
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and packs_jobs(hydra_cfg.launcher):
        share = configure_worker(hydra_cfg.sweep.dir, hydra_cfg.launcher.n_jobs)
        log.info("worker slot %(slot)d: %(threads)d threads, GPUs %(gpus)s", share)
    else:
        use_task_cpus()
    if cfg.get("pack_members"):  # the sweeper packed jobs that differ only in `pack`
        return run_pack(cfg, multirun)
    return run_job(cfg, multirun, hydra_cfg.job.get("num") if multirun else None)


if __name__ == "__main__":
    main()
