"""The SLURM job shape: derived from the trainer, and a mismatch rejected before submission.
(No cluster is needed: everything here happens before sbatch.)"""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from scalinglab import ConfigError
from scalinglab.launch.slurm import check_job_shape, partition_nodes, register_resolver
from tests.helpers import CONF_DIR, run_cli


def slurm_cfg(*overrides: str):
    register_resolver()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=["hydra/launcher=slurm", *overrides],
                       return_hydra_config=True)


@pytest.mark.parametrize("trainer,devices,gpus", [("ddp_cpu", 2, None), ("ddp", 4, 4),
                                                   ("default", 1, None)])
def test_job_shape_follows_the_trainer(trainer, devices, gpus):
    cfg = slurm_cfg(f"trainer={trainer}", f"trainer.devices={devices}")
    assert cfg.hydra.launcher.tasks_per_node == devices
    assert cfg.hydra.launcher.nodes == cfg.trainer.num_nodes
    assert cfg.hydra.launcher.gpus_per_node == gpus
    check_job_shape(cfg)  # consistent: no error


def test_mismatch_is_a_config_error():
    cfg = slurm_cfg("trainer=ddp_cpu", "hydra.launcher.tasks_per_node=1")
    with pytest.raises(ConfigError, match="tasks_per_node=1.*trainer.devices=2"):
        check_job_shape(cfg)


def test_cli_rejects_a_mismatch_before_submitting(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "hydra/launcher=slurm", "trainer=ddp_cpu",
                      "hydra.launcher.tasks_per_node=1", f"hydra.sweep.dir={sweep}"],
                     cli_env, tmp_path, timeout=120)
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error" in line]
    assert len(errors) == 1 and "trainer.devices=2" in errors[0]
    assert not (sweep / ".submitit").exists()  # nothing was submitted


def test_sweeping_the_device_count_is_a_config_error():
    cfg = slurm_cfg("trainer=ddp_cpu")
    with open_dict(cfg):
        cfg.hydra.overrides.task = ["trainer=ddp_cpu", "trainer.devices=1,2"]  # as -m gives it
    with pytest.raises(ConfigError, match="trainer.devices cannot vary inside one SLURM sweep"):
        check_job_shape(cfg)


def test_a_partitions_nodes_are_read_from_sinfo():
    # `sinfo -h -o "%P %D"`: the default partition starred, one line per node state
    out = "debug* 2\ngpu 3\ngpu 1\n"
    assert partition_nodes(out, None) == 2 and partition_nodes(out, "debug") == 2
    assert partition_nodes(out, "gpu") == 4 and partition_nodes(out, "cpu") is None
    assert partition_nodes("", None) is None
