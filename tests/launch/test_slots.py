import json
import re

import pytest

from scalinglab.launch.slots import claim_slot, share
from tests.helpers import run_cli


def test_share_splits_cores_and_gpus():
    assert share(0, 2, cpus=2, gpus=[]) == (1, [])
    assert share(1, 4, cpus=16, gpus=[]) == (4, [])
    assert share(0, 3, cpus=2, gpus=[]) == (1, [])  # never fewer than one thread
    assert share(1, 4, cpus=32, gpus=["0", "1", "2", "3"]) == (8, ["1"])
    assert share(1, 2, cpus=32, gpus=["0", "1", "2", "3"]) == (16, ["2", "3"])


def test_claim_slot_is_kept_by_the_process(tmp_path):
    first = claim_slot(tmp_path, 2)
    assert claim_slot(tmp_path, 2) == first  # a worker keeps its slot across jobs


@pytest.mark.slow
def test_local_parallel_runs_every_job_in_two_workers(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    result = run_cli(["scalinglab-train", "-m", "hydra/launcher=local_parallel",
                      "model.width=4,8,16,32", "trainer.max_epochs=1", "data.train_size=512",
                      "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}"],
                     cli_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"]["completed"] == 4
    log = result.stdout + result.stderr
    # two workers on this machine, each with its own slot (and cores // 2 threads)
    assert re.search(r"worker slot 0: \d+ threads", log)
    assert re.search(r"worker slot 1: \d+ threads", log)
