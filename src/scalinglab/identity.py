"""A job's identity: a hash of its resolved config without run-management keys.

Two jobs with the same identity train the same model on the same data with the same seed, so a
re-run of a sweep can skip a completed job and resume an unfinished one. Job directories in a
sweep are named by identity (readable prefix + hash), so they are stable across re-runs, grid
reorderings and SLURM requeues, and never collide.
"""

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

# Keys that say where and how a run is managed or logged, not what it trains.
RUN_MANAGEMENT_KEYS = (
    "hydra", "paths", "logger", "force", "checkpoint", "study", "threads",
    "data.data_dir", "data.root", "data.download", "data.eval_batch_size", "data.placement",
    "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.enable_checkpointing", "trainer.log_every_n_steps", "module.log_every_n_steps",
    "model.compile", "matmul_precision",  # the same numbers up to rounding, faster or not
    "module.call_ms",  # how many steps a Lightning call runs: the same steps either way
)


def _without(cfg: DictConfig) -> DictConfig:
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key in RUN_MANAGEMENT_KEYS:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node:
            del node[leaf]
    return cfg


def identity(cfg: DictConfig) -> str:
    """12 hex digits of the SHA-256 of the job's resolved, run-management-free config."""
    data = OmegaConf.to_container(_without(cfg), resolve=True)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def run_name(cfg: DictConfig) -> str:
    """A readable name from the size settings, e.g. `mlp-d2-w128-s0` (not unique)."""
    model, data = cfg.get("model", {}), cfg.get("data", {})
    size = (f"n{model.get('target_params'):g}" if model.get("target_params") is not None
            else f"w{model.get('width')}")
    parts = [str(model.get("family", "model")), f"d{model.get('depth')}", size]
    if data.get("train_size") is not None:
        parts.append(f"D{data.get('train_size')}")
    return "-".join([*parts, f"s{cfg.get('seed')}"])


def job_name(cfg: DictConfig) -> str:
    """A readable, stable, unique job name, e.g. `mlp-d2-w128-s0-3fa2c1d09b7e`."""
    return f"{run_name(cfg)}-{identity(cfg)}"


def register_resolver() -> None:
    """`${job_name:}` (the sweep subdir) and `${run_name:}` (the W&B run name)."""
    for name, fn in (("job_name", job_name), ("run_name", run_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, lambda *, _root_, fn=fn: fn(_root_))
