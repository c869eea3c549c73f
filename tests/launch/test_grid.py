from scalinglab.launch.grid import grid_jobs, sweep_overrides


def test_a_grid_expands_like_hydras_basic_sweeper():
    jobs = grid_jobs(["model=mlp,cnn", "model.width=8,16,32", "seed=0"])
    assert len(jobs) == 6 and jobs[0] == ["model=mlp", "model.width=8", "seed=0"]
    assert jobs[-1] == ["model=cnn", "model.width=32", "seed=0"]


def test_the_command_line_replaces_a_swept_key_as_multirun_does():
    overrides = sweep_overrides({"model": "mlp,cnn", "seed": "0,1"}, ["seed=3", "lr=0.1"])
    assert overrides == ["model=mlp,cnn", "seed=3", "lr=0.1"]
    assert len(grid_jobs(overrides)) == 2
