"""A job's identity: a hash of its resolved config without run-management keys; and the
overrides that made it, as its record keeps them.

Two jobs with the same identity train the same model on the same data with the same seed, so a
re-run of a sweep can skip a completed job and resume an unfinished one. Job directories in a
sweep are named by identity (readable prefix + hash), so they are stable across re-runs, grid
reorderings and SLURM requeues, and never collide.
"""

import hashlib
import json

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

PACK_KEYS = ("pack", "pack_members")  # trained alone or in a pack, a member is the same job
# Keys that say where and how a run is managed or logged, not what it trains.
RUN_MANAGEMENT_KEYS = (
    "hydra", "paths", "logger", "force", "checkpoint", "study", *PACK_KEYS,
    "curve",  # evaluations between steps: measurement only, training is the same
    "data.data_dir", "data.download", "data.eval_batch_size", "data.placement",
    "data.num_workers", "data.pin_memory",  # how batches are loaded, not which
    "trainer.default_root_dir", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.enable_checkpointing", "trainer.log_every_n_steps",
    "model.compile", "matmul_precision",  # the same numbers up to rounding, faster or not
)


def _placeholder(value, key: str):
    """A run-management value replaced by its own name, leaf by leaf."""
    if isinstance(value, dict):
        return {k: _placeholder(v, f"{key}.{k}") for k, v in value.items()}
    return f"<{key}>"


def training_config(cfg: DictConfig) -> dict:
    """The resolved config without run-management keys. They are replaced by placeholders
    before resolving, so a training key that points into one (a callback's
    `${paths.output_dir}/...`) resolves the same in every directory, and are then dropped."""
    data = OmegaConf.to_container(cfg, resolve=False)
    found = []
    for key in RUN_MANAGEMENT_KEYS:
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = _placeholder(node[leaf], key)
            found.append((parents, leaf))
    resolved = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    for parents, leaf in found:
        node = resolved
        for part in parents:
            node = node[part]
        del node[leaf]
    return resolved


def identity(cfg: DictConfig) -> str:
    """12 hex digits of the SHA-256 of the job's resolved, run-management-free config."""
    blob = json.dumps(training_config(cfg), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def run_name(cfg: DictConfig) -> str:
    """A readable name from the size settings, e.g. `mlp-d2-w128-s0` (not unique); a model
    without a depth key has no `d` part, e.g. `resnet-n5000-s0`."""
    model, data = cfg.get("model", {}), cfg.get("data", {})
    target = model.get("target_params")
    width = model.get(model.get("size_arg") or "width")  # the size argument's value
    size = (f"n{target:g}" if isinstance(target, int | float) else f"n{target}"
            if target is not None else f"w{width}")
    depth = model.get("depth")
    parts = [str(model.get("family", "model")), *([f"d{depth}"] if depth is not None else []),
             size]
    if data.get("train_size") is not None:
        parts.append(f"D{data.get('train_size')}")
    return "-".join([*parts, f"s{cfg.get('seed')}"])


def job_name(cfg: DictConfig) -> str:
    """A readable, stable, unique job name, e.g. `mlp-d2-w128-s0-3fa2c1d09b7e`; a pack of K
    jobs (train/pack.py) is `pack<K>-` and a hash of its identity and members."""
    members = cfg.get("pack_members")
    if members:
        listed = json.dumps(OmegaConf.to_container(members), sort_keys=True)
        blob = f"{identity(cfg)} {listed}".encode()
        return f"pack{len(members)}-{hashlib.sha256(blob).hexdigest()[:12]}"
    return f"{run_name(cfg)}-{identity(cfg)}"


def job_identity(cfg: DictConfig) -> dict:
    """The job's identity hash and readable name, as they go into its record."""
    return {"identity": identity(cfg), "job": job_name(cfg)}


def register_resolver() -> None:
    """`${job_name:}` (the sweep subdir) and `${run_name:}` (the W&B run name)."""
    for name, fn in (("job_name", job_name), ("run_name", run_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, lambda *, _root_, fn=fn: fn(_root_))


def overrides(cfg: DictConfig, task: list[str] | None = None) -> dict:
    """What the command line or the sweep set for this job (`task`, by default Hydra's): each
    overridden key's path and the value the job resolved (a config group's choice for a
    group). Whether it trained in a pack is not part of it: a member is the same job."""
    if task is None and not HydraConfig.initialized():
        return {}
    task = list(HydraConfig.get().overrides.task) if task is None else task
    out = {}
    for o in OverridesParser.create().parse_overrides(task):
        key = o.key_or_group
        if key.startswith("hydra.") or key in PACK_KEYS or o.value() is None:
            continue
        value = OmegaConf.select(cfg, key, default=None)
        out[key] = (o.get_value_element_as_str() if value is None or OmegaConf.is_config(value)
                    else value)
    return out
