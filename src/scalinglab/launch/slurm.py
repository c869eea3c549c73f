"""SLURM through hydra-submitit-launcher: the job shape comes from the trainer, and a shape
that cannot work is rejected before anything is submitted.

Lightning under SLURM takes its ranks from SLURM (one task per device) and spawns nothing, so
`tasks_per_node` must equal `trainer.devices` and `nodes` must equal `trainer.num_nodes`; a
mismatch hangs at the first collective (Lightning issues 19883, 20391).
"""

import logging
import os
import subprocess
import sys

from hydra.experimental.callback import Callback
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf

from scalinglab import ConfigError, exits
from scalinglab.launch import extends

SHAPE_KEYS = ("trainer.devices", "trainer.num_nodes", "hydra.launcher.tasks_per_node",
              "hydra.launcher.nodes")


def gpus_per_node(accelerator: str, devices: int) -> int | None:
    """GPUs to request per node: one per device on a GPU trainer, none otherwise."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def register_resolver() -> None:
    if not OmegaConf.has_resolver("slurm_gpus"):
        OmegaConf.register_new_resolver("slurm_gpus", gpus_per_node)


def is_slurm(launcher: DictConfig) -> bool:
    """Whether `hydra.launcher` is submitit's SLURM launcher (or ours, which extends it)."""
    target = launcher.get("_target_")
    return target is not None and extends(target, SlurmLauncher)


def use_task_cpus() -> int | None:
    """In a SLURM task, torch's threads are the task's CPUs (`--cpus-per-task`,
    `hydra.launcher.cpus_per_task`), not the node's cores divided by its tasks, as Lightning's
    DDP would set them: SLURM gave the task those CPUs. Through OMP_NUM_THREADS, which
    Lightning honours, unless the user set it. Returns the threads; None outside a task."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if not cpus or not cpus.isdigit() or "OMP_NUM_THREADS" in os.environ:
        return None
    import torch

    os.environ["OMP_NUM_THREADS"] = cpus
    torch.set_num_threads(int(cpus))
    return int(cpus)


def partition_nodes(sinfo: str, partition: str | None) -> int | None:
    """Nodes in `partition` (the default one, starred, when None) from `sinfo -h -o "%P %D"`
    output (a partition's nodes may be split over lines by state); None when it is not there."""
    counts: dict[str, int] = {}
    default = None
    for line in sinfo.splitlines():
        name, _, nodes = line.strip().partition(" ")
        if not nodes.strip().isdigit():
            continue
        if name.endswith("*"):
            name = default = name[:-1]
        counts[name] = counts.get(name, 0) + int(nodes)
    return counts.get(partition or default) if (partition or default) else None


def cluster_nodes(partition: str | None) -> int | None:
    """The partition's node count as this machine's `sinfo` reports it; None when no SLURM
    answers here (the submission is then SLURM's to judge). `scontrol ping` first: it says
    at once when no controller answers, where `sinfo` retries for ~10 s before failing."""
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, timeout=20)
        if ping.returncode != 0:
            return None
        out = subprocess.run(["sinfo", "-h", "-o", "%P %D"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return partition_nodes(out.stdout, partition) if out.returncode == 0 else None


def check_job_shape(config: DictConfig) -> None:
    """Raise ConfigError when a SLURM sweep's job shape disagrees with its trainer."""
    launcher = config.hydra.launcher
    if not is_slurm(launcher):
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
    partition = launcher.get("partition")
    available = cluster_nodes(partition)
    if available is not None and int(num_nodes) > available:
        where = f"partition {partition}" if partition else "the default partition"
        raise ConfigError(
            f"trainer.num_nodes={num_nodes} (hydra.launcher.nodes) but {where} has "
            f"{available} node(s): lower trainer.num_nodes, or choose a larger "
            "hydra.launcher.partition")


class JobShapeCheck(Callback):
    """Hydra callback: check the job shape at the start of a multirun, before submission."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_job_shape(config)
        except ConfigError as e:
            # Hydra turns a callback's exception into a warning; exiting stops the sweep
            logging.getLogger("scalinglab").error("config error: %s", e)
            sys.exit(exits.CONFIG)

