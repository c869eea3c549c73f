"""The job's W&B run: its id kept in the job's directory, so a resumed job continues it."""

from scalinglab.train.wandb import ID_FILE, run_id, study_name


def test_run_id_is_kept_in_the_job_dir(tmp_path):
    first = run_id(tmp_path)
    assert run_id(tmp_path) == first and len(first) == 12
    assert (tmp_path / ID_FILE).read_text() == first
    assert run_id(tmp_path / "other") != first  # every job its own run


def test_the_group_is_the_study_or_runs():
    assert study_name("mnist1d-v1") == "mnist1d-v1"
    assert study_name(None) == "runs"  # a single run outside a sweep
