"""A study on what the researcher brings: their own LightningDataModule (plain DataLoaders,
workers), their own model (sized by its own argument) and their own LightningModule, none of
scalinglab's own classes. Everything the record, the curve and the budgets measure comes from
what Lightning exposes."""

import json
import logging
import re

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from scalinglab import exits
from tests.helpers import CONF_DIR, ROOT, fit, run, run_cli

N_TRAIN, N_VAL, DIM = 600, 200, 12


def teacher_data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIM, generator=g)
    return TensorDataset(x, (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long())


class LoaderData(pl.LightningDataModule):
    """A user's datamodule: DataLoaders, a per-process batch size (Lightning's convention), and
    no `input_shape` (its model knows its input)."""

    def __init__(self, batch_size: int = 50, num_workers: int = 0, yields: str = "pairs"):
        super().__init__()
        self.batch_size, self.num_workers, self.yields = batch_size, num_workers, yields
        self.num_classes = 3

    def setup(self, stage=None):
        self.train, self.val = teacher_data(N_TRAIN, 0), teacher_data(N_VAL, 1)

    def train_dataloader(self):
        loader = DataLoader(self.train, batch_size=self.batch_size, shuffle=True,
                            num_workers=self.num_workers)
        if self.yields == "triples":
            return [(x, y, y) for x, y in loader]
        return loader

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=100, num_workers=self.num_workers)


class Net(nn.Module):
    """A user's model, sized by `hidden`."""

    def __init__(self, num_classes: int, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(DIM, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


class Plain(pl.LightningModule):
    """A user's LightningModule: takes `model`, logs val/loss and val/acc, nothing else (no
    `evaluate`, no `test_step`)."""

    def __init__(self, model: nn.Module, lr: float = 0.01, log_val: bool = True):
        super().__init__()
        self.model, self.lr, self.log_val = model, lr, log_val

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        name = "val/loss" if self.log_val else "val_loss"
        self.log(name, F.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


# The user's own config files, in ./conf of the directory they launch from (it extends the
# project's configs), exactly as the README's "Bring your own model and data" shows them.
CONF = {
    "data/loader.yaml": """_target_: tests.train.test_your_own.LoaderData
batch_size: 50
num_workers: 0
yields: pairs
""",
    "model/net.yaml": """_target_: tests.train.test_your_own.Net
family: net
size_arg: hidden
hidden: 16
target_params: null
""",
    "module/plain.yaml": """_target_: tests.train.test_your_own.Plain
lr: 0.01
log_val: true
""",
}
OWN = ["data=loader", "model=net"]
TINY = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=none",
        "trainer.enable_progress_bar=false"]


@pytest.fixture
def own(tmp_path, monkeypatch, data_dir):
    """Compose the training config as a user's run from their own directory does."""
    for name, text in CONF.items():
        (tmp_path / "conf" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "conf" / name).write_text(text)
    monkeypatch.chdir(tmp_path)  # train.yaml's search path, file://conf, is relative to it

    def make(*overrides: str, out: str = "run"):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[*TINY, *OWN, *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir, cfg.paths.data_dir = str(tmp_path / out), str(data_dir)
        return cfg

    return make


def test_a_users_model_and_datamodule_train_packed_as_their_own_jobs(own, tmp_path):
    # learning rates packed over the user's own model and DataLoader datamodule; seeds, which
    # need an order per member that plain DataLoaders cannot give, are refused before training
    from scalinglab import ConfigError
    from scalinglab.identity import job_identity
    from scalinglab.train.job import fit as train
    from scalinglab.train.pack import Member, build_pack

    def members(*each):
        cfgs = [own("module=classifier", "trainer.max_epochs=2", *o, out=f"m{k}")
                for k, o in enumerate(each)]
        return [Member(c, {**job_identity(c), "overrides": {}}, tmp_path / f"m{k}")
                for k, c in enumerate(cfgs)]

    group = members(["module.lr=0.01"], ["module.lr=0.05"])
    records = train(build_pack(group[0].cfg, group, tmp_path / "pack"))
    for member, record in zip(group, records, strict=True):
        alone = fit(member.cfg)[1]
        assert record.status == "completed" and record.steps == alone["steps"]
        assert record.val_loss == pytest.approx(alone["val_loss"], abs=5e-5)
    seeds = members(["seed=0"], ["seed=1"])
    with pytest.raises(ConfigError, match="LoaderData cannot give"):
        build_pack(seeds[0].cfg, seeds, tmp_path / "seeds")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_users_datamodule_and_model_train_and_are_measured(own, workers):
    cfg = own(f"data.num_workers={workers}", "trainer.max_epochs=2")
    job, record = fit(cfg)
    steps = 2 * N_TRAIN // 50
    assert record["status"] == "completed" and record["steps"] == steps
    assert record["family"] == "net" and record["width"] == 16 and record["depth"] is None
    assert record["params"] == sum(p.numel() for p in job.module.model.parameters())
    assert record["train_size"] == N_TRAIN and record["data"] == "LoaderData"
    assert record["examples_seen"] == steps * 50 and record["epochs"] == 2
    weights = 12 * 16 + 16 * 16 + 16 * 3  # two flops a multiply-add, biases not counted
    assert record["flops_per_example"] == 2 * weights
    assert record["train_flops"] == 3 * 2 * weights * steps * 50
    assert 0 < record["val_loss"] < 2 and 0 < record["val_acc"] <= 1
    assert record["train_loss"] is None  # one val loader: no training examples evaluated
    rows = job.curve.final_rows(job.recorder.record(job.trainer))
    assert [r["step"] for r in rows][-1] == steps and len(rows) > 3  # log-spaced, and the end


def test_target_params_and_a_flop_budget_for_a_users_model(own):
    cfg = own("model.target_params=2000", "budget.flops=3e8")
    _, record = fit(cfg)
    assert abs(record["params"] - 2000) < 60 and record["width"] != 16
    per_step = 3 * record["flops_per_example"] * 50
    assert record["steps"] == round(3e8 / per_step)
    assert abs(record["train_flops"] - 3e8) <= per_step / 2


def test_a_users_lightning_module_is_measured_by_what_it_logs(own):
    cfg = own("module=plain", "trainer.max_epochs=3")
    job, record = fit(cfg)
    assert record["status"] == "completed" and record["steps"] == 3 * N_TRAIN // 50
    assert 0 < record["val_loss"] < 2 and record["val_acc"] is not None
    # without an `evaluate`, the curve is Lightning's own validations, then the end
    rows = job.curve.final_rows(job.recorder.record(job.trainer))
    assert [r["step"] for r in rows] == [12, 24, 36]
    assert rows[0]["val_loss"] > rows[-1]["val_loss"]


class NoValidation(Plain):
    validation_step = pl.LightningModule.validation_step


class WithTest(LoaderData):
    """A datamodule with a test split, for a module that has no test_step."""

    def test_dataloader(self):
        return DataLoader(self.val, batch_size=100)


def test_the_curve_leaves_a_dataloaders_training_unchanged(own):
    """Each evaluation iterates DataLoaders, whose iterators draw a seed from the random
    state the next epoch's shuffle draws from: the curve puts it back."""
    _, measured = fit(own("trainer.max_epochs=3", "curve.points=8", "model.hidden=32"))
    _, plain = fit(own("trainer.max_epochs=3", "curve.points=0", "model.hidden=32",
                       out="plain"))
    assert measured["val_loss"] == plain["val_loss"] and measured["val_acc"] == plain["val_acc"]


def test_the_builtin_models_take_their_input_shape_from_a_real_batch(own):
    """The user's datamodule has no input_shape; scalinglab's MLP gets it from a batch, and
    one output per class."""
    _, record = fit(own("model=mlp", "model.width=8", "model.depth=1"))
    assert record["status"] == "completed"
    assert record["params"] == (DIM + 1) * 8 + (8 + 1) * 3


def test_a_module_without_a_test_step_skips_the_test_split(own):
    _, record = fit(own("module=plain", "data._target_=tests.train.test_your_own.WithTest"))
    assert record["status"] == "completed" and record["test_loss"] is None


def test_a_regressor_has_a_loss_and_no_accuracy(make_cfg):  # scalinglab's module=regressor
    job, record = fit(make_cfg("data=synthetic_regression", "module=regressor",
                               "data.train_size=1024", "trainer.max_epochs=3"))
    assert record["status"] == "completed" and record["val_acc"] is None
    assert record["train_acc"] is None and 0.01 < record["val_loss"] < 1  # MSE, noise 0.1
    rows = job.curve.final_rows(job.recorder.record(job.trainer))
    assert all(r["val_acc"] is None and r["val_loss"] > 0 for r in rows)


@pytest.mark.parametrize("overrides, match", [
    (["data.yields=triples"], r"data: the training loader must yield \(x, y\) batches of two "
                              "tensors; it yields a tuple of 3"),
    (["module=plain", "module.log_val=false"], "module: Plain logged no 'val/loss'"),
    (["model.size_arg=width"], "model.size_arg='width': .*Net takes no argument 'width'"),
    (["module=plain", "module._target_=tests.train.test_your_own.NoValidation"],
     "module: NoValidation has no validation_step"),
])
def test_a_users_mistakes_are_config_errors(own, caplog, overrides, match):
    cfg = own(*overrides)
    with caplog.at_level(logging.INFO, logger="scalinglab"), pytest.raises(SystemExit) as stop:
        run(cfg)
    assert stop.value.code == exits.CONFIG
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert re.search(match, errors[0]), errors[0]


def test_a_users_study_from_the_command_line(own, tmp_path, cli_env):
    """As the README shows it: the user's configs in ./conf, swept with -m, then fitted."""
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", *OWN, "model.target_params=500,2000,8000",
                      "trainer.max_epochs=2", f"hydra.sweep.dir={sweep}"],
                     {**cli_env, "PYTHONPATH": str(ROOT)}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((json.loads(p.read_text()) for p in sweep.glob("*/run.json")),
                  key=lambda r: r["params"])
    assert [r["status"] for r in runs] == ["completed"] * 3 and {r["family"] for r in runs} == {
        "net"}
    for run_, target in zip(runs, (500, 2000, 8000), strict=True):
        assert abs(run_["params"] - target) / target < 0.1
    fitted = run_cli(["scalinglab-fit", str(sweep), "--law", "power", "--json"], cli_env,
                     tmp_path)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    assert json.loads(fitted.stdout)["fits"][0]["n_fit"] == 3


@pytest.mark.slow
def test_a_users_datamodule_under_ddp_in_a_sweep(own, tmp_path, cli_env):
    """Lightning's distributed sampler shards the user's DataLoader across 2 gloo ranks; its
    batch size is per process, Lightning's convention, so a step sees 2 x 50 examples."""
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", *OWN, "trainer=ddp_cpu", "trainer.devices=2",
                      "model.hidden=8,32", "trainer.max_epochs=2", f"hydra.sweep.dir={sweep}"],
                     {**cli_env, "PYTHONPATH": str(ROOT)}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((json.loads(p.read_text()) for p in sweep.glob("*/run.json")),
                  key=lambda r: r["width"])
    assert [r["width"] for r in runs] == [8, 32] and {r["world_size"] for r in runs} == {2}
    for r in runs:
        assert r["status"] == "completed" and r["train_size"] == N_TRAIN
        assert r["steps"] == 2 * N_TRAIN // 100 and r["examples_seen"] == 2 * N_TRAIN
        assert r["epochs"] == 2 and 0 < r["val_loss"] < 2
