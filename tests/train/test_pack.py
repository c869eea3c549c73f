"""Packed jobs (`pack=[...]`): K members trained as one Lightning job measure as K separate
jobs do; a member's failure is its own; an interrupted pack resumes every member exactly."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from scalinglab import ConfigError, exits
from scalinglab.identity import job_identity
from scalinglab.module import Classifier
from scalinglab.records.tables import collect, collect_curves
from scalinglab.records.wandb import read_offline
from scalinglab.train.job import fit as train
from scalinglab.train.pack import Member, build_pack
from tests.helpers import fit, run_cli

# Every metric the fit, the tables and the report read; equal to 4 decimals
METRICS = ("val_loss", "val_acc", "train_loss", "train_acc", "test_loss", "test_acc",
           "best_val_loss", "train_val_gap")
SAME = ("status", "reason", "stop_reason", "steps", "examples_seen", "epochs", "params",
        "flops_per_example", "train_flops", "train_size", "seed", "identity", "job")


def members(make_cfg, tmp_path: Path, shared: list[str], each: list[list[str]]) -> list[Member]:
    """The members a sweep would pack: its shared overrides and each member's own."""
    out = []
    for own in each:
        cfg = make_cfg(*shared, *own)
        out.append(Member(cfg, {**job_identity(cfg), "overrides": {}}, tmp_path / "unused"))
    return out


def alone(member: Member, tmp_path: Path, *callbacks):
    """The member trained as its own job, in its own directory."""
    cfg = member.cfg.copy()
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "alone" / member.identity["job"])
    return fit(cfg, *callbacks)


def assert_same_record(packed: dict, own: dict) -> None:
    for key in SAME:
        assert packed[key] == own[key], key
    for key in METRICS:
        if own[key] is None:
            assert packed[key] is None, key
        else:
            assert packed[key] == pytest.approx(own[key], abs=5e-5, nan_ok=True), key


def test_members_train_and_measure_as_their_own_jobs(make_cfg, tmp_path):
    # muP (per-layer learning rates), weight decay, and members that differ in learning rate,
    # weight decay and seed (so in initial weights and in the order of their batches)
    shared = ["model.width=32", "model.parametrization=mup", "model.base_width=16"]
    each = [["module.lr=0.01", "seed=0", "module.weight_decay=0.0"],
            ["module.lr=0.04", "seed=0", "module.weight_decay=0.1"],
            ["module.lr=0.01", "seed=1", "module.weight_decay=0.1"]]
    group = members(make_cfg, tmp_path, shared, each)
    pack = build_pack(group[0].cfg, group, tmp_path / "pack")
    records = [r.to_dict() for r in train(pack)]

    for k, member in enumerate(group):
        job, own = alone(member, tmp_path)
        assert_same_record(records[k], own)
        # AdamW stepped each member's weights as it stepped the job's own: equal up to float
        # rounding (a batched matmul rounds differently from K small ones)
        for p, q in zip(pack.module.member_params(k), job.module.model.parameters(), strict=True):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-4, atol=1e-5)
        rows, own_rows = pack.curves[k].final_rows(pack.recorders[k].record(
            pack.trainer)), job.curve.final_rows(job.recorder.record(job.trainer))
        assert [r["step"] for r in rows] == [r["step"] for r in own_rows]
        for r, o in zip(rows, own_rows, strict=True):
            assert r["lr"] == pytest.approx(o["lr"], rel=1e-9)
            assert r["val_loss"] == pytest.approx(o["val_loss"], abs=5e-5)


def test_a_diverging_member_stops_alone_as_its_own_job_would(make_cfg, tmp_path):
    shared = ["model.width=16", "trainer.max_epochs=2", "trainer.log_every_n_steps=5"]
    group = members(make_cfg, tmp_path, shared, [["module.lr=0.01"], ["module.lr=1e38"]])
    pack = build_pack(group[0].cfg, group, tmp_path / "pack")
    fine, diverged = (r.to_dict() for r in train(pack))

    assert diverged["status"] == "diverged" and fine["status"] == "completed"
    assert pack.trainer.global_step == fine["steps"] > diverged["steps"]  # the other went on
    for packed, member in ((fine, group[0]), (diverged, group[1])):
        assert_same_record(packed, alone(member, tmp_path)[1])


class Interrupt(Exception):
    pass


class InterruptAt:
    """Raise once training reaches `step` (Lightning saves interrupted.ckpt on the way out)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self):
        import lightning.pytorch as pl

        step = self.step

        class Stop(pl.Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step == step:
                    raise Interrupt

        return Stop()


def test_an_interrupted_pack_resumes_every_member_exactly(make_cfg, tmp_path):
    # two seeds (two training orders), dropout, and a member that diverges before the
    # interruption: the resumed pack keeps it stopped, with its record
    shared = ["model.width=16", "model.dropout=0.1", "trainer.max_epochs=3",
              "trainer.log_every_n_steps=5"]
    each = [["module.lr=0.01", "seed=0"], ["module.lr=0.01", "seed=1"],
            ["module.lr=1e38", "seed=0"]]
    group = members(make_cfg, tmp_path, shared, each)
    full = [r.to_dict() for r in train(build_pack(group[0].cfg, group, tmp_path / "full"))]

    pack = build_pack(group[0].cfg, group, tmp_path / "cut")
    pack.trainer.callbacks.append(InterruptAt(13)())
    with pytest.raises(Interrupt):
        train(pack)
    assert (tmp_path / "cut" / "checkpoints" / "interrupted.ckpt").exists()
    resumed = build_pack(group[0].cfg, group, tmp_path / "cut")
    records = [r.to_dict() for r in train(resumed)]
    assert resumed.trainer.global_step == full[0]["steps"]
    for a, b in zip(records, full, strict=True):
        assert a["status"] == b["status"] and a["steps"] == b["steps"]
        for key in METRICS:  # same batches, same dropout masks: identical
            assert a[key] == b[key] or a[key] != a[key] and b[key] != b[key], key  # or NaN
    assert records[2]["status"] == "diverged" and records[2]["steps"] < 13


def test_a_pack_whose_members_all_diverged_resumes_to_the_same_records(make_cfg, tmp_path):
    # every member stopped, and the checkpoint saved at the epoch's end after: a re-run (a
    # diverged job is not skipped) resumes it and trains nothing more
    shared = ["model.width=16", "trainer.max_epochs=2", "trainer.log_every_n_steps=5",
              "module.lr=1e38", "checkpoint.every_n_epochs=1"]
    group = members(make_cfg, tmp_path, shared, [["seed=0"], ["seed=1"]])
    first = [r.to_dict() for r in train(build_pack(group[0].cfg, group, tmp_path / "pack"))]
    assert (tmp_path / "pack" / "checkpoints" / "last.ckpt").exists()
    again = [r.to_dict() for r in train(build_pack(group[0].cfg, group, tmp_path / "pack"))]
    assert [r["status"] for r in again] == ["diverged", "diverged"]
    for a, b in zip(again, first, strict=True):
        assert a["steps"] == b["steps"] and a["reason"] == b["reason"]


class BatchNormNet(torch.nn.Module):
    """A user's model with batch-norm statistics: buffers a pack cannot keep apart."""

    def __init__(self, input_shape, num_classes, width: int = 8):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, width),
                                       torch.nn.BatchNorm1d(width), torch.nn.Linear(width, 10))

    def forward(self, x):
        return self.net(x)


class OwnSteps(Classifier):
    """A user's task with a training step of its own, which a pack would not run."""

    def training_step(self, batch, batch_idx):
        return super().training_step(batch, batch_idx) * 2


LRS, SEEDS = [["module.lr=0.01"], ["module.lr=0.02"]], [["seed=0"], ["seed=1"]]


@pytest.mark.parametrize("overrides,each,message", [
    (["model._target_=tests.train.test_pack.BatchNormNet", "~model.depth", "~model.activation",
      "~model.dropout"], LRS, "net.2.running_mean, a buffer of its BatchNorm1d"),
    (["callbacks=[early_stopping]"], LRS, "EarlyStopping follows one job's logged metrics"),
    (["callbacks=[lr_monitor]"], LRS, "LearningRateMonitor follows one job's logged metrics"),
    (["trainer.precision=16-mixed"], LRS, "16-mixed scales every member's loss by one scale"),
    (["trainer.min_epochs=1"], LRS, "trainer.min_epochs would keep a diverged member"),
    (["model.compile=true"], LRS, "model.compile is not supported"),
    (["data.seed=${seed}"], SEEDS, r"data.seed differs between members \(1 and 0\)"),
    (["module._target_=tests.train.test_pack.OwnSteps"], LRS, "OwnSteps defines its own "
     "training_step"),
])
def test_what_cannot_be_packed_is_refused_before_training(make_cfg, tmp_path, overrides, each,
                                                          message):
    group = members(make_cfg, tmp_path, overrides, each)
    with pytest.raises(ConfigError, match=message):
        build_pack(group[0].cfg, group, tmp_path / "pack")
    assert not (tmp_path / "pack").exists()


# From the command line, as a user runs a sweep


def test_cli_packing_a_shape_key_is_one_line_and_exit_2(tmp_path, cli_env):
    result = run_cli(["scalinglab-train", "-m", "model.width=8,16", "pack=[model.width]",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], cli_env, tmp_path)
    assert result.returncode == exits.CONFIG
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error" in line]
    assert len(errors) == 1 and "model.width changes the model" in errors[0]
    assert not list((tmp_path / "sweep").glob("*/run.json"))


# Sizes far enough apart for a well-posed power law (a flat one lets 1e-7 move the fit)
SWEEP = ["model.width=4,16,64", "module.lr=0.01,0.04", "seed=0,1", "trainer.max_epochs=3",
         "data.train_size=1024", "trainer.enable_progress_bar=false"]


@pytest.mark.slow
def test_cli_a_packed_sweep_reads_as_the_unpacked_one(tmp_path, wandb_env):
    packed, unpacked = tmp_path / "packed", tmp_path / "unpacked"
    args = ["scalinglab-train", "-m", *SWEEP, "logger=wandb", "study=packs"]
    result = run_cli([*args, "pack=[module.lr,seed]", f"hydra.sweep.dir={packed}"], wandb_env,
                     tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pack: 12 jobs as 3" in result.stdout + result.stderr
    assert run_cli([*args, f"hydra.sweep.dir={unpacked}"], wandb_env,
                   tmp_path).returncode == 0

    # the same job directories, records and curves; the table and the fit cannot tell
    a, b = collect(packed), collect(unpacked)
    assert sorted(p.name for p in map(Path, a.path)) == sorted(p.name for p in map(Path, b.path))
    a, b = (t.assign(job_dir=t.path.map(lambda p: Path(p).name)).sort_values("job_dir")
            .reset_index(drop=True) for t in (a, b))
    for column in ("status", "identity", "steps", "params", "seed", "module.lr", "train_size"):
        assert a[column].tolist() == b[column].tolist(), column
    for column in METRICS:
        assert a[column].tolist() == pytest.approx(b[column].tolist(), abs=5e-5), column
    curves = collect_curves(packed).sort_values(["job", "step"]).reset_index(drop=True)
    own = collect_curves(unpacked).sort_values(["job", "step"]).reset_index(drop=True)
    assert curves.step.tolist() == own.step.tolist()
    assert curves.val_loss.tolist() == pytest.approx(own.val_loss.tolist(), abs=5e-5)
    assert curves.lr.tolist() == pytest.approx(own.lr.tolist(), rel=1e-9)
    fits = [json.loads(run_cli(["scalinglab-fit", str(d), "--law", "power", "--json"], wandb_env,
                               tmp_path).stdout)["fits"][0]["params"] for d in (packed, unpacked)]
    assert fits[0] == pytest.approx(fits[1], rel=1e-3)

    # each member has its own W&B run, in its own directory, read back as the record says
    jobs = [p for p in packed.iterdir() if (p / "run.json").exists()]
    assert len(jobs) == 12 and all(len(list(j.glob("wandb/offline-run-*"))) == 1 for j in jobs)
    rows, skipped = read_offline(packed)
    assert skipped == {} and len(rows) == 12
    local = {r["job"]: r for r in a.to_dict("records")}
    for row in rows:
        assert row["val_loss"] == pytest.approx(local[row["job"]]["val_loss"])
        assert row["study"] == "packs"

    # the same command again: every member is read, none trained
    again = run_cli([*args, "pack=[module.lr,seed]", f"hydra.sweep.dir={packed}"], wandb_env,
                    tmp_path)
    assert again.returncode == 0
    assert (again.stdout + again.stderr).count("skipping") == 12


@pytest.mark.slow
def test_cli_a_pack_trains_under_ddp_as_its_members_would(tmp_path, cli_env):
    # two gloo ranks: the spawned rank composes the same members and trains its shard; one
    # member diverges, and both ranks stop it at the same step
    args = ["scalinglab-train", "-m", "trainer=ddp_cpu", "model.width=16", "seed=0,1",
            "module.lr=0.01,1e38", "trainer.max_epochs=2", "data.train_size=512",
            "trainer.log_every_n_steps=2", "trainer.enable_progress_bar=false"]
    packed, unpacked = tmp_path / "packed", tmp_path / "unpacked"
    for sweep, extra in ((packed, ["pack=[seed,module.lr]"]), (unpacked, [])):
        result = run_cli([*args, *extra, f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
        assert result.returncode == exits.PARTIAL, result.stderr[-3000:]  # two diverged
    a, b = (collect(d).sort_values("job").reset_index(drop=True) for d in (packed, unpacked))
    assert a.job.tolist() == b.job.tolist() and (a.world_size == 2).all()
    assert a.status.tolist() == b.status.tolist() and a.steps.tolist() == b.steps.tolist()
    assert sorted(a.status) == ["completed", "completed", "diverged", "diverged"]
    for column in METRICS:
        assert a[column].tolist() == pytest.approx(b[column].tolist(), abs=5e-5,
                                                   nan_ok=True), column
    (pack_dir,) = packed.glob("pack4-*")
    assert (pack_dir / "train_rank1.log").exists()  # the second rank ran the pack
