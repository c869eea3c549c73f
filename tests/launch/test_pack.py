"""A sweep's jobs grouped into packs: only jobs that differ in nothing but the packed keys."""

import pytest

from scalinglab import ConfigError
from scalinglab.launch.grid import grid_jobs
from scalinglab.launch.pack import check_keys, pack_jobs


def test_jobs_that_differ_only_in_the_packed_keys_become_one_job():
    jobs = grid_jobs(["model.width=32,64", "module.lr=0.001,0.01", "seed=0,1", "x=1"])
    packed = pack_jobs(jobs, ["module.lr", "seed"])
    assert len(packed) == 2  # one pack per width
    first = packed[0]
    assert first[:2] == ["model.width=32", "x=1"]
    assert first[2] == ("pack_members=[['module.lr=0.001','seed=0'],['module.lr=0.001','seed=1'],"
                        "['module.lr=0.01','seed=0'],['module.lr=0.01','seed=1']]")
    # seed alone: one pack per (width, lr)
    assert len(pack_jobs(jobs, ["seed"])) == 4


def test_a_job_alone_in_its_group_is_left_as_it_was():
    jobs = grid_jobs(["model.width=32,64", "seed=3"])
    assert pack_jobs(jobs, ["seed"]) == jobs


@pytest.mark.parametrize("value", ["1e-3", "'a b'", r"'it\'s'", r"'c:\x'", r"'x\\'"])
def test_a_members_overrides_reach_it_as_the_sweep_wrote_them(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parse = OverridesParser.create().parse_override
    (job,) = pack_jobs([[f"module.lr={value}", "a=1"], ["module.lr=2", "a=1"]], ["module.lr"])
    ((own,), _) = parse(job[1]).value()
    assert parse(own).value() == parse(f"module.lr={value}").value()


@pytest.mark.parametrize("keys,message", [
    (["model.width"], "model.width changes the model"),
    (["data.train_size"], "data.train_size changes the data"),
    (["trainer.max_epochs"], "is shared by all members"),
    ("seed", "must be a list of keys"),
])
def test_keys_that_change_shapes_data_or_the_trainer_are_refused(keys, message):
    with pytest.raises(ConfigError, match=message):
        check_keys(keys)
    assert check_keys(["module.lr", "seed", "module.weight_decay"]) == [
        "module.lr", "seed", "module.weight_decay"]
