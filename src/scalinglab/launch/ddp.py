"""Plain `ddp` inside a Hydra multirun.

Lightning's subprocess launcher starts ranks 1..N-1 by re-running `sys.argv`. Under `-m` that
argv is the whole sweep, and the children write into `hydra.run.dir`, not the job's directory:
each child would run every job of the grid (Lightning issue 11300, Hydra issue 2070). Here the
children get a ONE-JOB command instead: this job's own overrides, its resolved output directory,
and no `-m`. At the job's end, the strategy's `end_job()` waits for the children, destroys the
process group and restores the environment, so the next job starts fresh ranks on a new port.
Within a job nothing is torn down, so validation after `fit` runs on the same ranks.

This leans on Lightning's private launcher API: the versions are pinned in pyproject.toml and
tests/launch/test_ddp.py runs it for real (gloo, 2 processes).
"""

import os
import subprocess
import sys

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

# hydra.* overrides that describe the sweep or the job's identity, not the job's settings
_SWEEP_KEYS = ("hydra.mode", "hydra.run", "hydra.sweep", "hydra.launcher", "hydra.sweeper",
               "hydra.output_subdir", "hydra.job.name", "hydra.job.num", "hydra.job.id")
_ADDED_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE",
              "OMP_NUM_THREADS")



def job_command(local_rank: int) -> list[str]:
    """The command that runs THIS Hydra job (not the sweep) as one more rank."""
    hc = HydraConfig.get()
    cmd = [sys.executable, "-m", "scalinglab.train"]
    for source in hc.runtime.config_sources:
        path = source.path.removeprefix("file://")
        if source.provider == "main" and source.schema == "file":
            cmd += ["--config-path", path]
        elif source.provider == "command-line" and source.schema == "file":
            cmd += ["--config-dir", path]
    cmd += ["--config-name", hc.job.config_name]
    cmd += list(hc.overrides.task)
    cmd += [o for o in hc.overrides.hydra if not o.lstrip("+~").startswith(_SWEEP_KEYS)]
    cmd += [f'hydra.run.dir="{hc.runtime.output_dir}"', "hydra.output_subdir=null",
            f"hydra.job.name={hc.job.name}_rank{local_rank}"]
    if hc.mode == RunMode.MULTIRUN:  # a single run has no job number or id
        cmd += [f"hydra.job.num={hc.job.num}", f"hydra.job.id={hc.job.id}"]
    return cmd


class JobLauncher(_SubprocessScriptLauncher):
    """Starts the other ranks with `job_command` when inside a Hydra app."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.saved: dict | None = None  # environment and thread count before the launch

    def launch(self, function, *args, trainer=None, **kwargs):
        if self.saved is None:
            self.saved = {"env": {k: os.environ.get(k) for k in _ADDED_ENV},
                          "threads": torch.get_num_threads()}
        return super().launch(function, *args, trainer=trainer, **kwargs)

    def _call_children_scripts(self) -> None:
        if not HydraConfig.initialized():
            super()._call_children_scripts()
            return
        self._check_can_spawn_children()
        env = self.cluster_environment
        os.environ.update(MASTER_ADDR=env.main_address, MASTER_PORT=str(env.main_port),
                          NODE_RANK=str(env.node_rank()), LOCAL_RANK=str(env.local_rank()),
                          WORLD_SIZE=str(self.num_processes * self.num_nodes))
        for local_rank in range(1, self.num_processes):
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(job_command(local_rank), env=child_env))

    def end_job(self) -> None:
        """Wait for the spawned ranks and restore the environment of before the launch."""
        for proc in self.procs:
            proc.wait()
        self.procs.clear()
        if self.saved is not None:
            for key, value in self.saved["env"].items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            torch.set_num_threads(self.saved["threads"])
            self.saved = None


class HydraDDPStrategy(DDPStrategy):
    """`DDPStrategy` whose spawned ranks run only the current Hydra job. Under SLURM or
    torchrun the ranks already exist and nothing is spawned, exactly as with plain DDP."""

    def _configure_launcher(self) -> None:
        assert self.cluster_environment is not None
        self._launcher = JobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)

    def end_job(self) -> None:
        """The job is over (train/run.py calls this once, after fit and any validation): wait
        for its spawned ranks, destroy its process group, restore the environment."""
        if isinstance(self._launcher, JobLauncher):
            self._launcher.end_job()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


