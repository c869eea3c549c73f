"""A pack: jobs of a sweep that differ only in the `pack` keys (seeds, learning rates, weight
decays) trained as one Lightning job of K members (packed.PackedTask).

The sweeper (launch/pack.py) hands the pack each member's own overrides in `pack_members`.
Each member gets here the config, identity and directory its own job would have had, and is
measured into its own record and curve (callbacks/members.py); train/run.py
writes them, so a member's run.json and curve.csv read as those of a job that ran alone. What
the members share is built once from the pack's config: the data, the Trainer and its
callbacks, the checkpoints, which live in the pack's own directory.
"""

import copy
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from scalinglab import ConfigError, check_number
from scalinglab.callbacks.curve import row_metrics
from scalinglab.callbacks.members import MemberRecorder, PackCurve
from scalinglab.callbacks.recorder import hyperparams
from scalinglab.callbacks.wandb_summary import lay_out
from scalinglab.identity import job_identity, job_name, overrides, training_config
from scalinglab.identity import register_resolver as register_resolvers
from scalinglab.launch.pack import PACKABLE, key_of
from scalinglab.measure import examples_per_step, forward_flops_per_example, rng_untouched
from scalinglab.models import build_model, data_args
from scalinglab.models.factory import unwrap
from scalinglab.packed import PackedTask
from scalinglab.records.schema import RunRecord
from scalinglab.train.job import (
    Job,
    budget_steps,
    checkpoints,
    clock,
    first_batch,
    make_trainer,
    set_matmul_precision,
    size_of,
    trainer_settings,
)


@dataclass
class Member:
    """One member of a pack (a job alone is a pack of one, train/run.py): its config as its
    own job's (no `hydra` node), its identity, name and overrides, and its directory."""

    cfg: DictConfig
    identity: dict
    output_dir: Path


def compose_members(cfg: DictConfig) -> list[Member]:
    """Each member of this pack job (`cfg`), with the config, identity, overrides and directory
    it would have had alone. Members differ only in plain values (launch/pack.PACKABLE), so a
    member's config is the pack's with its own values set as Hydra sets an override's
    (OmegaConf.update), not a new composition (0.15 s a member)."""
    parse = OverridesParser.create().parse_overrides
    shared = [o for o in HydraConfig.get().overrides.task if key_of(o) != "pack_members"]
    members = []
    for own in cfg.pack_members:
        member = copy.deepcopy(cfg)
        with open_dict(member):
            member.pack, member.pack_members = [], None  # as its own job's
            for override in parse(list(own)):
                OmegaConf.update(member, override.key_or_group, override.value(), merge=True)
            # beside the pack's own directory, in the sweep's (a DDP rank's run.dir is the
            # pack's): where the sweep puts a job (hydra.sweep.subdir=${job_name:})
            directory = Path(cfg.paths.output_dir).parent / job_name(member)
            member.paths.output_dir = str(directory)
        members.append(Member(member, {**job_identity(member),
                                       "overrides": overrides(member, [*shared, *own])},
                              directory))
    return members


def checkpoint_dir(pack_dir: Path, members: list[Member]) -> Path:
    """Where a pack of these members keeps its checkpoints, under the pack's directory: a
    re-run that trains fewer of them (some completed) starts its own."""
    ids = ",".join(m.identity["identity"] for m in members)
    return pack_dir / f"k{len(members)}-{hashlib.sha256(ids.encode()).hexdigest()[:8]}"


def check_packable(cfg: DictConfig, settings: dict, callbacks: list[pl.Callback]) -> None:
    """What a pack cannot do as its members' own jobs would, refused before anything is
    built: each refusal says what to do instead."""
    unpacked = "; train these jobs unpacked (pack=[])"
    if cfg.model.get("compile"):
        raise ConfigError(f"pack: model.compile is not supported for packed members{unpacked}")
    if str(settings.get("precision")) in ("16", "16-mixed"):
        raise ConfigError("pack: trainer.precision=16-mixed scales every member's loss by one "
                          "scale, so one member's overflow skips every member's step; use "
                          f"bf16-mixed{unpacked}")
    for key in ("min_steps", "min_epochs"):
        if settings.get(key):
            raise ConfigError(f"pack: trainer.{key} would keep a diverged member's job "
                              f"training past its stop{unpacked}")
    for c in callbacks:
        if isinstance(c, EarlyStopping | LearningRateMonitor) or getattr(c, "monitor", None):
            raise ConfigError(f"pack: {type(c).__name__} follows one job's logged metrics, and "
                              f"a pack logs none of its own (each member's go to its record)"
                              f"{unpacked}")


def flat(tree: dict, prefix: str = "") -> dict:
    """A nested config as {dotted.key: value}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_shared(cfg: DictConfig, members: list[Member]) -> None:
    """Members differ in the packed values alone: a value that follows one (`data.seed:
    ${seed}`) would be built once, from the pack's config, for every member."""
    def rest(c: DictConfig) -> dict:
        return {k: v for k, v in flat(training_config(c)).items() if k not in PACKABLE}

    shared = rest(cfg)
    for member in members:
        own = rest(member.cfg)
        for key in sorted(set(own) | set(shared)):
            if own.get(key) != shared.get(key):
                raise ConfigError(f"pack: {key} differs between members ({own.get(key)!r} and "
                                  f"{shared.get(key)!r}), as it follows a packed key, but a "
                                  "pack builds it once for all; train these jobs unpacked "
                                  "(pack=[])")


def build_pack(cfg: DictConfig, members: list[Member], directory: Path) -> Job:
    """The pack, every value checked before any training: what the members share from the
    pack's config `cfg`, each member's model, task and loggers from its own. Its checkpoints go
    to `directory`/checkpoints."""
    job_start = time.monotonic()
    register_resolvers()
    set_matmul_precision(cfg)
    check_shared(cfg, members)
    seeds = [check_number("seed", m.cfg.seed, integer=True) for m in members]
    pl.seed_everything(seeds[0], workers=True, verbose=False)
    settings = trainer_settings(cfg.trainer)
    settings["default_root_dir"] = str(directory)
    try:
        datamodule = hydra.utils.instantiate(cfg.data)
        user = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
        # each member's own loggers, written when the pack ends (log_member)
        loggers = [[hydra.utils.instantiate(c) for c in (m.cfg.get("logger") or {}).values()]
                   for m in members]
    except InstantiationException as e:
        raise unwrap(e) from None
    check_packable(cfg, settings, user)
    per_member_order = len(set(seeds)) > 1
    if per_member_order and not hasattr(datamodule, "member_seeds"):
        raise ConfigError(f"pack: members with different seeds each need their own training "
                          f"order, which {type(datamodule).__name__} cannot give; pack seeds "
                          "with scalinglab's in-memory datamodules (data=mnist1d, synthetic, "
                          "...) or leave seed out of pack")
    recorders = [MemberRecorder(k, m.identity, OmegaConf.to_container(m.cfg, resolve=True),
                                check_every_n_steps=settings.get("log_every_n_steps") or 50,
                                job_start=job_start, loggers=loggers[k])
                 for k, m in enumerate(members)]
    curve = PackCurve((cfg.get("curve") or {}).get("points", 0), len(members))
    callbacks = [*recorders, curve, *checkpoints(cfg, directory), *user, *clock(settings, user)]
    # The members' own metrics go to their records and loggers, not to the pack's
    trainer = make_trainer(settings, callbacks, [])

    datamodule.trainer = trainer
    loader, (x, y) = first_batch(datamodule)
    tasks, built = [], []
    for seed, member in zip(seeds, members, strict=True):
        pl.seed_everything(seed, workers=True, verbose=False)  # its own initial weights
        model_cfg = OmegaConf.to_container(member.cfg.model, resolve=True)
        built.append(build_model(model_cfg, data_args(datamodule, x)))
        try:
            tasks.append(hydra.utils.instantiate(member.cfg.module, model=built[-1].model,
                                                 _convert_="all"))
        except InstantiationException as e:
            raise unwrap(e) from None
    flops = forward_flops_per_example(built[0].model, x)
    module = PackedTask(tasks, member_batches=per_member_order)
    try_step(module, x, y)
    if per_member_order:
        datamodule.member_seeds = seeds
    per_step = examples_per_step(loader, trainer.world_size, trainer.accumulate_grad_batches)
    steps = budget_steps(cfg.get("budget") or {}, flops, per_step)
    if steps is not None:
        trainer = make_trainer(settings, callbacks, [], max_steps=steps, max_epochs=-1)
    size = size_of(built[0], flops, datamodule, loader)
    for recorder in recorders:
        recorder.examples_per_step, recorder.size = per_step, size
    curve.examples_per_step = per_step
    return Job(cfg, directory, datamodule, module, trainer, recorders, curve.members)


def try_step(module: PackedTask, x: torch.Tensor, y: torch.Tensor) -> None:
    """One packed loss on two examples, before training: a model whose layers cannot run
    member by member under vmap (in-place updates of its own state) is refused here."""
    with rng_untouched(), torch.no_grad():
        try:
            module.vmapped("loss", (x[:2].cpu(), y[:2].cpu()), stacked=False)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"pack: the model cannot be packed (torch.func.vmap over its "
                              f"members says: {first}); train these jobs unpacked "
                              "(pack=[])") from None


def log_member(recorder: MemberRecorder, record: RunRecord, rows: list[dict]) -> None:
    """A member's own loggers (its W&B run: its name, the study's group, its directory), when
    the pack ends: its config, and its learning curve as `curve/*` step metrics.
    train/run.py then sets the W&B summary from the record and closes the run."""
    for logger in recorder.loggers:
        if isinstance(logger, WandbLogger):
            lay_out(logger.experiment)
        logger.log_hyperparams(hyperparams(record))
        for row in rows:
            logger.log_metrics(row_metrics(row), step=row["step"])
        logger.save()
