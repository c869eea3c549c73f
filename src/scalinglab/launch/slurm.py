"""SLURM through hydra-submitit-launcher: the job shape comes from the trainer, and a shape
that cannot work is rejected before anything is submitted.

Lightning under SLURM takes its ranks from SLURM (one task per device) and spawns nothing, so
`tasks_per_node` must equal `trainer.devices` and `nodes` must equal `trainer.num_nodes`; a
mismatch hangs at the first collective (Lightning issues 19883, 20391).
"""

import logging
import signal
import sys

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError

SHAPE_KEYS = ("trainer.devices", "trainer.num_nodes", "hydra.launcher.tasks_per_node",
              "hydra.launcher.nodes")


def gpus_per_node(accelerator: str, devices: int) -> int | None:
    """GPUs to request per node: one per device on a GPU trainer, none otherwise."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def register_resolver() -> None:
    if not OmegaConf.has_resolver("slurm_gpus"):
        OmegaConf.register_new_resolver("slurm_gpus", gpus_per_node)


def check_job_shape(config: DictConfig) -> None:
    """Raise ConfigError when a SLURM sweep's job shape disagrees with its trainer."""
    launcher = config.hydra.launcher
    if "Slurm" not in str(launcher.get("_target_", "")):
        return
    swept = [o.split("=", 1)[0] for o in config.hydra.overrides.task
             if o.split("=", 1)[0].lstrip("+~") in SHAPE_KEYS and "," in o]
    swept += [k for k in (config.hydra.sweeper.get("params") or {}) if k in SHAPE_KEYS]
    if swept:
        raise ConfigError(f"{', '.join(swept)} cannot vary inside one SLURM sweep: its job "
                          "array has one shape; run one sweep per device count")
    tasks, nodes = launcher.tasks_per_node, launcher.nodes
    devices, num_nodes = config.trainer.devices, config.trainer.num_nodes
    if tasks != devices or nodes != num_nodes:
        raise ConfigError(
            f"hydra.launcher.tasks_per_node={tasks}, nodes={nodes} but trainer.devices="
            f"{devices}, trainer.num_nodes={num_nodes}: SLURM must start one task per device "
            "(a mismatch hangs); use hydra/launcher=slurm, which derives them from the trainer")


class Preempted(SystemExit):
    """Raised at a step boundary after SLURM's requeue signal."""

    def __init__(self, signum: int, handler) -> None:
        super().__init__(f"preempted by {signal.Signals(signum).name}")
        self.signum, self.handler = signum, handler

    def requeue(self) -> None:
        """Run submitit's handler: rank 0 requeues the job and exits; other ranks just exit.
        Raises submitit's UncompletedJobError when the job may not be requeued again."""
        self.handler(self.signum, None)
        sys.exit(-1)  # what submitit's rank 0 exits with


class JobShapeCheck(Callback):
    """Hydra callback: check the job shape at the start of a multirun, before submission."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_job_shape(config)
        except ConfigError as e:
            # Hydra turns a callback's exception into a warning; exiting stops the sweep
            logging.getLogger("scalinglab").error("config error: %s", e)
            sys.exit(2)

