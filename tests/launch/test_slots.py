import json
import re
import subprocess
import sys

import pytest

from scalinglab.launch.slots import share
from tests.helpers import run_cli

# One worker process: claim a slot, say which, and hold it until stdin closes.
WORKER = """
import sys
from scalinglab.launch.slots import claim_slot
print(claim_slot(sys.argv[1], int(sys.argv[2])), claim_slot(sys.argv[1], int(sys.argv[2])),
      flush=True)
sys.stdin.read()
"""


def test_share_splits_cores_and_gpus():
    assert share(0, 2, cpus=2, gpus=[]) == (1, [])
    assert share(1, 4, cpus=16, gpus=[]) == (4, [])
    assert share(0, 3, cpus=2, gpus=[]) == (1, [])  # never fewer than one thread
    assert share(1, 4, cpus=32, gpus=["0", "1", "2", "3"]) == (8, ["1"])
    assert share(1, 2, cpus=32, gpus=["0", "1", "2", "3"]) == (16, ["2", "3"])


def worker(sweep, n_slots: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(sweep), str(n_slots)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def claimed(proc: subprocess.Popen) -> list[int]:
    return [int(v) for v in proc.stdout.readline().split()]


def test_two_worker_processes_claim_two_slots_and_keep_them(tmp_path):
    first, second = worker(tmp_path, 2), None
    try:
        assert claimed(first) == [0, 0]  # a worker keeps its slot across jobs
        second = worker(tmp_path, 2)
        assert claimed(second) == [1, 1]  # slot 0 is held: the next free one
        third = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path), "2"],
                               input="", capture_output=True, text=True, timeout=60)
        assert third.returncode != 0 and "no free slot among 2" in third.stderr
        first.communicate("", timeout=60)  # the worker exits: its lock is released
        again = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path), "2"],
                               input="", capture_output=True, text=True, timeout=60)
        assert again.stdout.split() == ["0", "0"]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.communicate("", timeout=60)


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
    # no ./conf where it ran: Hydra's warning about it is silenced in the workers too
    assert "hydra.searchpath" not in log
