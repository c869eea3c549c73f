"""Kill a real training process with SIGTERM, re-run it, and compare with an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli

ARGS = ["model=cnn", "model.width=16", "model.dropout=0.1", "trainer.max_epochs=12",
        "data.train_size=2048",
        "trainer.enable_progress_bar=false", "checkpoint.every_n_epochs=1"]


def kill_after_first_checkpoint(args: list[str], run_dir: Path, env: dict) -> int:
    """Start a real training process, SIGTERM it once its first checkpoint exists."""
    exe = str(Path(sys.executable).parent / "scalinglab-train")
    proc = subprocess.Popen([exe, *args, f"hydra.run.dir={run_dir}"], env=env,
                            cwd=run_dir.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoints" / "last.ckpt"  # the periodic one, after the first epoch
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


@pytest.mark.slow
def test_sigterm_checkpoints_and_a_rerun_resumes_exactly(tmp_path, cli_env):
    full = run_cli(["scalinglab-train", *ARGS, f"hydra.run.dir={tmp_path / 'full'}"],
                   cli_env, tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]

    run_dir = tmp_path / "killed"
    assert kill_after_first_checkpoint(ARGS, run_dir, cli_env) == 143
    interrupted = json.loads((run_dir / "run.json").read_text())
    assert interrupted["status"] == "failed" and "interrupted" in interrupted["reason"]
    assert 0 < interrupted["steps"] < 12 * 2048 // 128

    resumed = run_cli(["scalinglab-train", *ARGS, f"hydra.run.dir={run_dir}"], cli_env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout + resumed.stderr
    a = json.loads((tmp_path / "full" / "run.json").read_text())
    b = json.loads((run_dir / "run.json").read_text())
    assert b["status"] == "completed"
    assert b["steps"] == a["steps"] and b["examples_seen"] == a["examples_seen"]
    # Same batches, same dropout masks (the RNG state is checkpointed): identical up to float
    # rounding; measured bit-identical on CPU.
    for key in ("val_loss", "train_loss", "best_val_loss", "val_acc"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), key


@pytest.mark.slow
def test_resumed_job_continues_the_same_wandb_run(tmp_path, cli_env):
    env = {**cli_env, "WANDB_MODE": "offline"}
    run_dir = tmp_path / "job"
    args = [*ARGS, "logger=wandb"]
    assert kill_after_first_checkpoint(args, run_dir, env) == 143
    run_id = (run_dir / "wandb_id").read_text()
    resumed = run_cli(["scalinglab-train", *args, f"hydra.run.dir={run_dir}"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (run_dir / "wandb_id").read_text() == run_id
    attempts = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and all(name.endswith(run_id) for name in attempts)
