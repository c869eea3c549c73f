from omegaconf import OmegaConf

from scalinglab.identity import identity, job_name, register_resolver


def cfg(**over):
    base = {"seed": 0, "force": False, "model": {"family": "mlp", "depth": 2, "width": 64,
                                                 "target_params": None},
            "data": {"train_size": None, "data_dir": "/a", "batch_size": 128},
            "trainer": {"max_epochs": 3, "enable_progress_bar": True},
            "paths": {"output_dir": "/x"}, "logger": {"csv": {"save_dir": "/x"}}}
    merged = OmegaConf.merge(OmegaConf.create(base), OmegaConf.from_dotlist(
        [f"{k}={v}" for k, v in over.items()]))
    return merged


def test_run_management_keys_do_not_change_identity():
    base = identity(cfg())
    for key, value in [("paths.output_dir", "/y"), ("data.data_dir", "/b"), ("force", True),
                       ("trainer.enable_progress_bar", False), ("logger.csv.save_dir", "/z")]:
        assert identity(cfg(**{key: value})) == base, key


def test_training_keys_change_identity():
    base = identity(cfg())
    for key, value in [("model.width", 65), ("seed", 1), ("data.batch_size", 64),
                       ("trainer.max_epochs", 4), ("data.train_size", 1000)]:
        assert identity(cfg(**{key: value})) != base, key


def test_job_name_is_readable_and_stable():
    assert job_name(cfg()) == f"mlp-d2-w64-s0-{identity(cfg())}"
    assert job_name(cfg(**{"model.target_params": 10000, "data.train_size": 500})).startswith(
        "mlp-d2-n10000-D500-s0-")


def test_resolver_names_the_job_dir_from_the_whole_config():
    register_resolver()
    root = OmegaConf.merge(cfg(), {"hydra": {"sweep": {"subdir": "${job_name:}"}}})
    assert root.hydra.sweep.subdir == job_name(cfg())


def test_a_packed_member_is_the_same_job_and_a_pack_is_named_by_its_members():
    member = cfg(pack="[module.lr,seed]")
    assert identity(member) == identity(cfg()) and job_name(member) == job_name(cfg())
    members = [["module.lr=0.01", "seed=0"], ["module.lr=0.02", "seed=0"]]
    pack = OmegaConf.merge(cfg(), {"pack_members": members})
    name = job_name(pack)
    assert name.startswith("pack2-") and name != job_name(cfg())  # never a member's directory
    other = OmegaConf.merge(cfg(), {"pack_members": members[:1] + [["module.lr=0.03", "seed=0"]]})
    assert job_name(other) != name
