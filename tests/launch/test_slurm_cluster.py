"""Against a real SLURM cluster on localhost (scripts/slurm/start_cluster.sh): grids as job
arrays, DDP with SLURM's tasks, preemption with requeue and exact resumption, and jobs across
two nodes (two slurmd daemons on this host: `start_cluster.sh --nodes 2`).

CI starts a two-node cluster. Where none answers, these tests start one when they can (root,
apt) and stop what they started; otherwise they skip with the reason."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli

pytestmark = pytest.mark.slow
SCRIPTS = ROOT / "scripts" / "slurm"
# Long enough (about 8 s of training) to be signalled mid-run.
LONG_EPOCHS, LONG_STEPS_PER_EPOCH = 100, 2048 // 128
LONG = ["model=cnn", "model.width=16", "model.dropout=0.1", f"trainer.max_epochs={LONG_EPOCHS}",
        "data.train_size=2048", "trainer.enable_progress_bar=false",
        "checkpoint.every_n_epochs=1"]


def cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    # a controller that answers: the cluster is up, even when its node is busy
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return state.returncode == 0 and bool(state.stdout.split())


@pytest.fixture(scope="module")
def cluster():
    started = False
    if not cluster_up():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("no SLURM cluster answers, and starting one needs root on Debian "
                        "(sudo bash scripts/slurm/start_cluster.sh)")
        start = subprocess.run(["bash", str(SCRIPTS / "start_cluster.sh"), "--nodes", "2"],
                               capture_output=True, text=True, timeout=600)
        if start.returncode != 0:
            pytest.skip(f"could not start a SLURM cluster here: {start.stderr[-500:]}")
        started = True
    yield
    if started:
        subprocess.run(["bash", str(SCRIPTS / "stop_cluster.sh")], check=False)


def node_count() -> int:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True)
    return len(set(out.stdout.split()))


@pytest.fixture
def two_nodes(cluster):
    if node_count() < 2:
        pytest.skip("the cluster has one node (scripts/slurm/start_cluster.sh --nodes 2)")


@pytest.fixture
def sweep(cluster, tmp_path):
    """The test's sweep directory; its SLURM jobs are cancelled afterwards, so a failed test
    leaves no requeued job behind to compete with the next one."""
    path = tmp_path / "sweep"
    yield path
    for job in {j.split("_")[0] for j in job_ids(path)} if path.exists() else ():
        subprocess.run(["scancel", job], check=False)


def sweep_cmd(sweep: Path, *overrides: str) -> list[str]:
    exe = str(Path(sys.executable).parent / "scalinglab-train")
    return [exe, "-m", "hydra/launcher=slurm", f"hydra.sweep.dir={sweep}", *overrides]


def job_ids(sweep: Path) -> list[str]:
    """SLURM job ids of a sweep (`<array>_<index>` in an array), from submitit's log folders."""
    return sorted(p.parent.name for p in (sweep / ".submitit").glob("*/*_0_log.out"))


def job_id(sweep: Path) -> str:
    """The single SLURM job of a one-job sweep."""
    (only,) = job_ids(sweep)
    return only


def sacct_states(job_id: str, attempts: bool = False) -> list[str]:
    """Final states of the job's allocations (array tasks); with `attempts`, requeued ones too.
    The launcher returns once results are written, a moment before SLURM closes the job."""
    deadline = time.time() + 60
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id,
                              *(["-D"] if attempts else [])], capture_output=True, text=True)
        states = out.stdout.split()
        if not set(states) & {"PENDING", "RUNNING", "COMPLETING"} or time.time() > deadline:
            return states
        time.sleep(0.5)


def records(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/run.json"))]


def preempt_when_training(proc: subprocess.Popen, sweep: Path,
                          checkpoint: str = "*/checkpoints/last.ckpt") -> str:
    """Wait for the job's first epoch checkpoint, then signal it as SLURM does before its time
    limit or on preemption: USR2 to the job's tasks (not `-b`, which kills the batch shell)."""
    deadline = time.time() + 180
    while not list(sweep.glob(checkpoint)):
        assert proc.poll() is None and time.time() < deadline, "the job never started training"
        time.sleep(0.2)
    job = job_id(sweep)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    return job


def test_grid_runs_as_a_job_array(sweep, tmp_path, cli_env):
    result = subprocess.run(sweep_cmd(sweep, "model.width=8,16", "trainer.max_epochs=1",
                                      "trainer.enable_progress_bar=false"),
                            env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    tasks = job_ids(sweep)
    array = tasks[0].split("_")[0]
    assert tasks == [f"{array}_0", f"{array}_1"]  # one array for the grid
    assert sacct_states(array) == ["COMPLETED", "COMPLETED"]
    runs = records(sweep)
    assert sorted(r["width"] for r in runs) == [8, 16]
    assert all(r["status"] == "completed" for r in runs)
    assert (sweep / "runs.csv").exists()


def test_ddp_uses_slurm_tasks_and_spawns_nothing(sweep, tmp_path, cli_env):
    # two tasks of one CPU each: the whole of a 2-core node
    result = subprocess.run(sweep_cmd(sweep, "trainer=ddp_cpu", "trainer.devices=2",
                                      "hydra.launcher.cpus_per_task=1", "trainer.max_epochs=1",
                                      "trainer.enable_progress_bar=false"),
                            env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    job = job_id(sweep)
    (run,) = records(sweep)
    assert run["status"] == "completed" and run["world_size"] == 2
    assert run["cluster_env"] == "SLURMEnvironment"  # ranks came from SLURM's two tasks
    logs = sorted(p.name for p in (sweep / ".submitit" / job).glob("*_log.out"))
    assert logs == [f"{job}_0_log.out", f"{job}_1_log.out"]  # one per SLURM task (rank)
    job_log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    assert "Starting 1 processes" not in job_log  # our own launcher never ran


def test_preempted_job_is_requeued_and_resumes_exactly_in_the_same_run(sweep, tmp_path, cli_env):
    reference = run_cli(["scalinglab-train", *LONG, f"hydra.run.dir={tmp_path / 'full'}"],
                        cli_env, tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]

    env = {**cli_env, "WANDB_MODE": "offline"}  # a real W&B run, written to disk
    proc = subprocess.Popen(sweep_cmd(sweep, *LONG, "logger=wandb"), env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job = preempt_when_training(proc, sweep)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]

    (job_dir,) = [p.parent for p in sweep.glob("*/run.json")]  # the same directory throughout
    log = (job_dir / "train.log").read_text()
    assert "preempted by SIGUSR2" in log and "Requeued job" in log
    assert "resuming from" in log and "interrupted.ckpt" in log
    assert sacct_states(job, attempts=True) == ["REQUEUED", "COMPLETED"]
    # both attempts logged to the same W&B run
    run_id = (job_dir / "wandb_id").read_text()
    attempts = sorted(p.name for p in (job_dir / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and all(name.endswith(run_id) for name in attempts)
    a = json.loads((tmp_path / "full" / "run.json").read_text())
    (b,) = records(sweep)
    assert b["status"] == "completed" and b["steps"] == a["steps"]
    # the tolerance of the local resume test (measured bit-identical on CPU)
    for key in ("val_loss", "train_loss", "best_val_loss", "val_acc"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), key


def test_a_preempted_pack_is_requeued_and_resumes_every_member_exactly(sweep, tmp_path,
                                                                         cli_env):
    pack = [*LONG, "seed=0,1", "pack=[seed]"]
    reference = run_cli(["scalinglab-train", "-m", *pack, f"hydra.sweep.dir={tmp_path / 'full'}"],
                        cli_env, tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]

    proc = subprocess.Popen(sweep_cmd(sweep, *pack), env=cli_env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job = preempt_when_training(proc, sweep, "pack2-*/*/checkpoints/last.ckpt")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    (pack_dir,) = sweep.glob("pack2-*")
    log = (pack_dir / "train.log").read_text()
    assert "preempted by SIGUSR2" in log and "resuming from" in log
    assert sacct_states(job, attempts=True) == ["REQUEUED", "COMPLETED"]
    full = {r["job"]: r for r in records(tmp_path / "full")}
    runs = records(sweep)
    assert len(runs) == 2 and {r["job"] for r in runs} == set(full)
    for run in runs:  # both members, in their own directories, as if never interrupted
        a = full[run["job"]]
        assert run["status"] == "completed" and run["steps"] == a["steps"]
        for key in ("val_loss", "train_loss", "best_val_loss", "val_acc"):
            assert run[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), key


def test_preempted_ddp_job_resumes_on_both_ranks(sweep, tmp_path, cli_env):
    proc = subprocess.Popen(sweep_cmd(sweep, *LONG, "trainer=ddp_cpu", "trainer.devices=2",
                                      "hydra.launcher.cpus_per_task=1"),
                            env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    job = preempt_when_training(proc, sweep)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    (run,) = records(sweep)
    assert run["status"] == "completed" and run["world_size"] == 2
    assert run["steps"] == LONG_EPOCHS * LONG_STEPS_PER_EPOCH  # none repeated or skipped
    log = (sweep / run["job"] / "train.log").read_text()
    # both ranks stopped at the same step boundary, and both resumed from the checkpoint
    assert log.count("preempted by SIGUSR2: checkpoint saved") == 2  # each rank's own line
    assert log.count("resuming from") == 2
    assert sacct_states(job, attempts=True) == ["REQUEUED", "COMPLETED"]


def test_job_out_of_requeues_is_recorded_failed(sweep, tmp_path, cli_env):
    # timeout_min under 10: submitit counts every signal as a time-out, and 0 are allowed
    proc = subprocess.Popen(sweep_cmd(sweep, *LONG, "hydra.launcher.timeout_min=5",
                                      "hydra.launcher.max_num_timeout=0"),
                            env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    preempt_when_training(proc, sweep)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out[-3000:]  # the sweep's "no job completed"
    (run,) = records(sweep)
    assert run["status"] == "failed" and "timed-out too many times" in run["reason"]
    assert 0 < run["steps"] < LONG_EPOCHS * LONG_STEPS_PER_EPOCH  # stopped part-way
    assert list((sweep / run["job"] / "checkpoints").glob("interrupted.ckpt"))


def test_a_refused_submission_is_one_line_naming_the_keys(sweep, tmp_path, cli_env):
    # 2 tasks x cpus_per_task 2 = 4 CPUs: more than the 2-core node has; sbatch refuses it
    result = subprocess.run(sweep_cmd(sweep, "trainer=ddp_cpu", "trainer.devices=2"),
                            env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]
    errors = [line for line in out.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "hydra.launcher.cpus_per_task" in errors[0], errors
    assert "Traceback" not in out
    assert not list(sweep.glob("*/run.json"))  # nothing ran


def test_a_grow_search_runs_its_rounds_as_job_arrays(sweep, tmp_path, cli_env):
    result = subprocess.run(sweep_cmd(sweep, "hydra/sweeper=grow", "data=synthetic",
                                      "data.train_size=4000", "trainer.max_epochs=5",
                                      "module.lr=0.01", "hydra.sweeper.start=[300,1000]",
                                      "hydra.sweeper.target='val_acc>=0.74'"),
                            env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((sweep / "grow.json").read_text())
    assert doc["status"] == "met" and len(doc["rounds"]) >= 2
    arrays = {task.split("_")[0] for task in job_ids(sweep)}
    assert len(arrays) == len(doc["rounds"])  # one job array per round
    assert all(state == "COMPLETED" for a in arrays for state in sacct_states(a))
    assert len(records(sweep)) == doc["n_jobs"] == len(job_ids(sweep))


# One CPU a task, so one torch thread a rank, as Lightning gives each of 2 local processes on
# this 2-core host: the same threads sum in the same order, and the numbers agree exactly.
TWO_NODES = ["trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2",
             "hydra.launcher.cpus_per_task=1"]


def test_a_job_across_two_nodes_equals_two_processes_on_one(two_nodes, sweep, tmp_path,
                                                            cli_env):
    short = ["trainer.max_epochs=2", "data.train_size=1024", "trainer.enable_progress_bar=false",
             "checkpoint.every_n_epochs=1"]
    local = run_cli(["scalinglab-train", "trainer=ddp_cpu", "trainer.devices=2", *short,
                     f"hydra.run.dir={tmp_path / 'local'}"], cli_env, tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    env = {**cli_env, "WANDB_MODE": "offline"}  # a real W&B run per job: rank 0's alone
    result = subprocess.run(sweep_cmd(sweep, *TWO_NODES, *short, "logger=wandb"), env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    job = job_id(sweep)
    nodes = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "NNodes,NodeList", "-j", job],
                           capture_output=True, text=True).stdout.split()
    assert nodes == ["2|n[1-2]"]  # one allocation of both nodes
    (run,) = records(sweep)
    assert run["status"] == "completed" and run["world_size"] == 2 and run["num_nodes"] == 2
    assert run["cluster_env"] == "SLURMEnvironment"
    job_dir = sweep / run["job"]
    assert len(list(job_dir.glob("wandb/offline-run-*"))) == 1
    assert [p.name for p in (job_dir / "checkpoints").glob("*.ckpt")] == ["last.ckpt"]
    one = json.loads((tmp_path / "local" / "run.json").read_text())
    assert (run["steps"], run["examples_seen"]) == (one["steps"], one["examples_seen"])
    for key in ("val_loss", "train_loss", "val_acc"):  # the same global batches and threads
        assert run[key] == one[key], key


def test_a_preempted_two_node_job_resumes_exactly_on_both_nodes(two_nodes, sweep, tmp_path,
                                                               cli_env):
    reference = run_cli(["scalinglab-train", *LONG, "trainer=ddp_cpu", "trainer.devices=2",
                         f"hydra.run.dir={tmp_path / 'full'}"], cli_env, tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    proc = subprocess.Popen(sweep_cmd(sweep, *LONG, *TWO_NODES), env=cli_env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job = preempt_when_training(proc, sweep)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    (run,) = records(sweep)
    assert run["status"] == "completed" and run["num_nodes"] == 2
    log = (sweep / run["job"] / "train.log").read_text()
    assert log.count("preempted by SIGUSR2: checkpoint saved") == 2  # each node's rank
    assert log.count("resuming from") == 2
    assert sacct_states(job, attempts=True) == ["REQUEUED", "COMPLETED"]
    a = json.loads((tmp_path / "full" / "run.json").read_text())
    assert run["steps"] == a["steps"] == LONG_EPOCHS * LONG_STEPS_PER_EPOCH
    for key in ("val_loss", "train_loss", "val_acc", "best_val_loss"):
        assert run[key] == a[key], key  # measured bit-identical


def test_more_nodes_than_the_partition_has_is_one_line(two_nodes, sweep, tmp_path, cli_env):
    result = subprocess.run(sweep_cmd(sweep, "trainer=ddp_cpu", "trainer.devices=1",
                                      "trainer.num_nodes=3"),
                            env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]
    errors = [line for line in out.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "trainer.num_nodes=3 (hydra.launcher.nodes)" in errors[0]
    assert "has 2 node(s)" in errors[0] and "Traceback" not in out
    assert not (sweep / ".submitit").exists()  # nothing was submitted
