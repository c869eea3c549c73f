"""hydra/launcher=slurm: hydra-submitit-launcher's SLURM launcher, with a refused submission
reported as one config error line (exit 2). Hydra takes launchers only from the hydra_plugins
namespace, hence this package; the job-shape check before submission is in
scalinglab/launch/slurm.py. Hydra imports every plugin module at start-up, so scalinglab
itself is imported only once a submission is refused."""

import contextlib
import io
import logging
import sys

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as _SubmititSlurm,
)


class _WithoutSbatchErrors(io.TextIOBase):
    """stderr, less the "sbatch: error" lines submitit prints before it raises: the one config
    error line below carries SLURM's message."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return len(text) if text.startswith("sbatch: error") else self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class ScalinglabSlurmLauncher(_SubmititSlurm):
    """hydra-submitit-launcher's SLURM launcher, with a refused submission reported as one
    config error line naming the launcher keys to change (exit 2), not a traceback."""

    def launch(self, job_overrides, initial_job_idx):
        from submitit.core.utils import FailedJobError

        from scalinglab import exits

        try:
            with contextlib.redirect_stderr(_WithoutSbatchErrors(sys.stderr)):
                return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as e:
            message = " ".join(str(e).split())
            if "sbatch" not in message:  # a job that failed after submission: not ours to judge
                raise
            p = self.params
            logging.getLogger("scalinglab").error(
                "config error: SLURM refused the job array (%s). It asks for cpus_per_task=%s "
                "x tasks_per_node=%s on %s node(s), mem_gb=%s, gpus_per_node=%s, partition=%s: "
                "change hydra.launcher.cpus_per_task, mem_gb, partition or timeout_min, or "
                "the shape, trainer.devices and trainer.num_nodes (hydra.launcher.tasks_per_node "
                "and nodes follow them)",
                message.split("error:")[-1].strip(), p.get("cpus_per_task"),
                p.get("tasks_per_node"), p.get("nodes"), p.get("mem_gb"),
                p.get("gpus_per_node"), p.get("partition"))
            sys.exit(exits.CONFIG)
