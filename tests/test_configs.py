"""Every config group option and every experiment composes with the real config tree."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from scalinglab.data.vision import SPECS
from tests.helpers import CONF_DIR

GROUPS = {p.name: sorted(f.stem for f in p.glob("*.yaml"))
          for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name not in ("hydra", "local")}
OPTIONS = [(group, option) for group, options in GROUPS.items() for option in options]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group, option):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        # Hydra's runtime values exist only inside a run: stand in for the output dir
        cfg = compose("train", overrides=[f"{group}={option}", "paths.output_dir=/tmp/out"])
    OmegaConf.resolve(cfg)
    assert cfg.model.family in ("mlp", "cnn", "transformer")


GRIDS = [e for e in GROUPS["experiment"] if e != "grow"]  # grow: a search, not a grid


@pytest.mark.parametrize("experiment", GRIDS)
def test_experiment_grid_expands(experiment):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params, f"experiment {experiment} defines no sweep grid"
    n_jobs = 1
    for values in params.values():
        n_jobs *= len(str(values).split(","))
    assert n_jobs >= 6


def test_every_experiment_is_listed():
    assert {"study", "mlp_grid", "cnn_grid", "target_params", "mlp_data_grid",
            "cnn_cifar10_data_grid", "isoflop", "grow", "lr_transfer",
            "mnist1d_paper", "lm_study", "lm_isoflop", "lm_lr_transfer"} <= set(
                GROUPS["experiment"])


def test_the_grow_experiment_sets_the_grow_sweeper():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=grow"], return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.scalinglab_grow.GrowSweeper"
    assert cfg.hydra.sweeper.target == "val_acc>=0.93" and cfg.model.family == "cnn"


def test_every_swept_training_set_fits_the_examples_left_after_validation():
    """data.train_size may not exceed the training examples left once data.val_from_train are
    held out: every grid's largest training set is built (or, for a torchvision dataset, counted
    from its spec)."""
    checked = []
    for experiment in GRIDS:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}",
                                              "paths.output_dir=/tmp/out"],
                          return_hydra_config=True)
        swept = str(cfg.hydra.sweeper.params.get("data.train_size", ""))
        sizes = [int(float(v)) for v in swept.split(",") if v.strip()]
        if not sizes:
            continue
        data = OmegaConf.to_container(cfg.data, resolve=True)
        if data["_target_"].endswith("VisionData"):  # torchvision may not be installed here
            left = SPECS[data["dataset"]].train_pool - (data["val_from_train"] or 0)
            assert max(sizes) <= left, (experiment, max(sizes), left)
        else:
            instantiate(cfg.data, train_size=max(sizes))  # a ConfigError when it does not fit
        checked.append(experiment)
    assert {"mlp_data_grid", "cnn_cifar10_data_grid"} <= set(checked)
