import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from scalinglab import CONF_DIR, ConfigError
from scalinglab.launch.grid import grid_jobs, sweep_overrides


def test_a_grid_expands_like_hydras_basic_sweeper():
    jobs = grid_jobs(["model=mlp,cnn", "model.width=8,16,32", "seed=0"])
    assert len(jobs) == 6 and jobs[0] == ["model=mlp", "model.width=8", "seed=0"]
    assert jobs[-1] == ["model=cnn", "model.width=32", "seed=0"]


def test_the_command_line_replaces_a_swept_key_as_multirun_does():
    overrides = sweep_overrides({"model": "mlp,cnn", "seed": "0,1"}, ["seed=3", "lr=0.1"])
    assert overrides == ["model=mlp,cnn", "seed=3", "lr=0.1"]
    assert len(grid_jobs(overrides)) == 2


def test_a_config_groups_glob_sweeps_its_options_with_hydras_loader():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        jobs = grid_jobs(["model=glob(m*)", "seed=0,1"], GlobalHydra.instance().config_loader())
    assert jobs == [["model=mlp", "seed=0"], ["model=mlp", "seed=1"]]


def test_an_interval_is_not_a_grid():
    with pytest.raises(ConfigError, match=r"module.lr=interval\(0.1,0.2\): an interval is not"):
        grid_jobs(["module.lr=interval(0.1,0.2)"])
