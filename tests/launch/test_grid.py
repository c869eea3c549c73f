from scalinglab.launch.grid import grid_jobs


def test_a_grid_expands_like_hydras_basic_sweeper():
    jobs = grid_jobs(["model=mlp,cnn", "model.width=8,16,32", "seed=0"])
    assert len(jobs) == 6 and jobs[0] == ["model=mlp", "model.width=8", "seed=0"]
    assert jobs[-1] == ["model=cnn", "model.width=32", "seed=0"]
