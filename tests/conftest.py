"""Shared fixtures: the real config composed in-process with tiny settings (fast tests), and
the environment for subprocess runs (slow tests). Helpers live in tests/helpers.py."""

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import scalinglab.train.cli  # noqa: F401  (registers the config's resolvers, as the app does)
from scalinglab.train.quiet import quiet_lightning
from tests.helpers import CONF_DIR, TRAIN_SIZE

TINY = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=none",
        "trainer.enable_progress_bar=false", f"data.train_size={TRAIN_SIZE}"]


@pytest.fixture(autouse=True)
def quiet():
    """The terminal policy main() applies, for the in-process jobs too (pytest restores the
    warning filters around every test)."""
    quiet_lightning()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One generated-dataset cache for the whole session (MNIST-1D is generated once)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """Compose the real `train` config with tiny settings plus `overrides`."""

    def make(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[*TINY, *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.data_dir = str(data_dir)
        return cfg

    return make


@pytest.fixture
def cli_env(data_dir, tmp_path) -> dict:
    """Environment for subprocess runs: shared data cache, no W&B, no writes outside tmp."""
    env = dict(os.environ)
    env.update(SCALINGLAB_DATA_DIR=str(data_dir), WANDB_MODE="disabled",
               WANDB_DIR=str(tmp_path), WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"),
               HYDRA_FULL_ERROR="0", MPLCONFIGDIR=str(data_dir.parent / "mpl"))
    return env


@pytest.fixture
def wandb_env(cli_env, tmp_path):
    """Subprocess environment with W&B on but no key and no login: the logger must fall back
    to offline runs by itself."""
    env = {k: v for k, v in cli_env.items() if k not in ("WANDB_MODE", "WANDB_API_KEY")}
    env.update(HOME=str(tmp_path / "home"), WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"))
    return env
