"""Packing jobs on one machine (`hydra/launcher=local_parallel`).

joblib's loky workers are processes that run job after job. The first job in a worker claims a
slot (an exclusive lock on `<sweep>/.slots/<i>.lock`, held until the worker exits), and the
slot decides the worker's share of the machine for its whole life: cores // K threads, and on a
multi-GPU machine its own GPUs via CUDA_VISIBLE_DEVICES. A process-wide claim matters because
CUDA reads CUDA_VISIBLE_DEVICES only once per process.

Why joblib rather than submitit_local: its workers are reused, so later jobs skip Python and
torch start-up, and its jobs run in-process under Hydra, like the basic launcher's.
"""

import fcntl
import os
from pathlib import Path

from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import DictConfig

from scalinglab.launch import extends

_slot: tuple[int, object] | None = None  # (index, open lock file) for this worker process


def claim_slot(sweep_dir: str | Path, n_slots: int) -> int:
    """This worker process's slot in [0, n_slots), claimed once and kept."""
    global _slot
    if _slot is not None:
        return _slot[0]
    slots = Path(sweep_dir) / ".slots"
    slots.mkdir(parents=True, exist_ok=True)
    for i in range(n_slots):
        f = open(slots / f"{i}.lock", "w")  # noqa: SIM115 (held open: the lock is the claim)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        _slot = (i, f)
        return i
    raise RuntimeError(f"no free slot among {n_slots} in {slots}")


def share(slot: int, n_slots: int, cpus: int, gpus: list[str]) -> tuple[int, list[str]]:
    """Threads and GPU ids for `slot` when `n_slots` workers split `cpus` cores and `gpus`."""
    threads = max(1, cpus // n_slots)
    if not gpus:
        return threads, []
    per = max(1, len(gpus) // n_slots)
    start = (slot * per) % len(gpus)
    return threads, gpus[start:start + per]


def packs_jobs(launcher: DictConfig) -> bool:
    """hydra/launcher=local_parallel: joblib workers that each run job after job."""
    target = launcher.get("_target_")
    return bool(launcher.get("n_jobs")) and target is not None and extends(target, JoblibLauncher)


def configure_worker(sweep_dir: str | Path, n_slots: int) -> dict:
    """Claim this worker's slot and apply its share; returns what was set."""
    import torch

    slot = claim_slot(sweep_dir, n_slots)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    threads, mine = share(slot, n_slots, os.cpu_count() or 1, gpus)
    torch.set_num_threads(threads)
    if mine:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
    return {"slot": slot, "threads": threads, "gpus": mine}
