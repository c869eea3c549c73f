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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from scalinglab import ConfigError, check_number
from scalinglab.callbacks.curve import row_metrics
from scalinglab.callbacks.members import MemberRecorder, PackCurve
from scalinglab.callbacks.wandb_summary import lay_out
from scalinglab.identity import job_identity, job_name, overrides
from scalinglab.identity import register_resolver as register_resolvers
from scalinglab.launch.pack import key_of
from scalinglab.measure import examples_per_step, forward_flops_per_example, rng_untouched
from scalinglab.models import build_model, data_args
from scalinglab.models.factory import unwrap
from scalinglab.packed import PackedTask
from scalinglab.records.schema import CONFIG_KEYS, RunRecord
from scalinglab.train.job import (
    budget_steps,
    checkpoints,
    clock,
    first_batch,
    make_trainer,
    measures_test,
    set_matmul_precision,
    size_of,
    trainer_settings,
)


@dataclass
class Member:
    """One member: its config as its own job's (no `hydra` node), its identity, name and
    overrides, and its directory."""

    cfg: DictConfig
    identity: dict
    output_dir: Path


@dataclass
class Pack:
    """A built pack: what `trainer.fit` takes, and each member's recorder and curve."""

    cfg: DictConfig
    directory: Path  # the pack's checkpoints
    members: list[Member]
    datamodule: pl.LightningDataModule
    module: PackedTask
    trainer: pl.Trainer
    recorders: list[MemberRecorder]
    curve: PackCurve


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
            member.pack_members = None
            for override in parse(list(own)):
                OmegaConf.update(member, override.key_or_group, override.value(), merge=True)
            # beside the pack's own directory, in the sweep's (a DDP rank's run.dir is the
            # pack's): where the sweep would have put it
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


def build_pack(cfg: DictConfig, members: list[Member], directory: Path) -> Pack:
    """The pack, every value checked before any training: what the members share from the
    pack's config `cfg`, each member's model and task from its own."""
    job_start = time.monotonic()
    register_resolvers()
    set_matmul_precision(cfg)
    if cfg.model.get("compile"):
        raise ConfigError("pack: model.compile is not supported for packed members; set "
                          "model.compile=false or pack=[]")
    seeds = [check_number("seed", m.cfg.seed, integer=True) for m in members]
    pl.seed_everything(seeds[0], workers=True, verbose=False)
    settings = trainer_settings(cfg.trainer)
    settings["default_root_dir"] = str(directory)
    try:
        datamodule = hydra.utils.instantiate(cfg.data)
        user = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    except InstantiationException as e:
        raise unwrap(e) from None
    if any(isinstance(c, EarlyStopping) for c in user):
        raise ConfigError("pack: EarlyStopping would stop every member at once; use it with "
                          "pack=[] (each job stops on its own)")
    per_member_order = len(set(seeds)) > 1
    if per_member_order and not hasattr(datamodule, "member_seeds"):
        raise ConfigError(f"pack: members with different seeds each need their own training "
                          f"order, which {type(datamodule).__name__} cannot give; pack seeds "
                          "with scalinglab's in-memory datamodules (data=mnist1d, synthetic, "
                          "...) or leave seed out of pack")
    recorders = [MemberRecorder(k, m.identity, OmegaConf.to_container(m.cfg, resolve=True),
                                check_every_n_steps=settings.get("log_every_n_steps") or 50,
                                job_start=job_start) for k, m in enumerate(members)]
    curve = PackCurve((cfg.get("curve") or {}).get("points", 0), len(members))
    callbacks = [*recorders, curve, *checkpoints(cfg, directory), *user, *clock(settings, user)]
    # The members' own metrics go to their records (and W&B runs, train/run.py), not the pack's
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
    return Pack(cfg, directory, members, datamodule, module, trainer, recorders, curve)


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


def fit_pack(pack: Pack) -> list[RunRecord]:
    """Train the pack from its latest checkpoint, if any; measure the final weights of the
    members still training (and the test split, once); return every member's record."""
    trainer, module, data = pack.trainer, pack.module, pack.datamodule
    if pack.cfg.force and trainer.is_global_zero:
        shutil.rmtree(pack.directory / "checkpoints", ignore_errors=True)
    trainer.fit(module, datamodule=data, ckpt_path="last")
    running = [r for r in pack.recorders if r.final is None]
    if running:
        validated = all(r.validated_at == trainer.global_step for r in running)
        if trainer.global_step and not validated and trainer.limit_val_batches != 0:
            trainer.validate(module, datamodule=data, verbose=False)
        if measures_test(data, module):
            trainer.test(module, datamodule=data, verbose=False)
    return [r.record(trainer) for r in pack.recorders]


def log_member(cfg: DictConfig, record: RunRecord, rows: list[dict]) -> None:
    """A member's loggers (its W&B run: its name, the study's group, its directory), made when
    the pack ends, as its own job's would be: its config, and its learning curve as `curve/*`
    step metrics. train/run.py then sets the W&B summary from the record and closes the run."""
    try:
        loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values()]
    except InstantiationException as e:
        raise unwrap(e) from None
    values = record.to_dict()
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            lay_out(logger.experiment)
        logger.log_hyperparams({"scalinglab": record.config,
                                **{k: values.get(k) for k in CONFIG_KEYS}})
        for row in rows:
            logger.log_metrics(row_metrics(row), step=row["step"])
        logger.save()
