"""Helpers shared by the tests: run a console script as a user would, train in-process, and
the tiny data every in-process job trains on."""

import subprocess
import sys
import sysconfig
from pathlib import Path

from omegaconf import DictConfig

from scalinglab import CONF_DIR  # noqa: F401  (the configs the tests compose)

ROOT = Path(__file__).resolve().parents[1]
# In-process jobs train on TRAIN_SIZE MNIST-1D examples in batches of BATCH: STEPS_PER_EPOCH
# optimizer steps an epoch (validation stays MNIST-1D's 1000 held-out examples).
TRAIN_SIZE, BATCH = 1024, 128
STEPS_PER_EPOCH = TRAIN_SIZE // BATCH


def run_cli(args: list[str], env: dict, cwd: Path,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a console script the way a user would, from `cwd`."""
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run([str(exe), *args[1:]], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def fit(cfg: DictConfig, *callbacks):
    """Build the job and fit it in-process, as `scalinglab-train` does (resuming its latest
    checkpoint), with the test's own `callbacks` added to its trainer; returns the job and its
    record."""
    from scalinglab.train.job import build
    from scalinglab.train.job import fit as fit_job

    job = build(cfg)
    job.trainer.callbacks.extend(callbacks)
    return job, fit_job(job)[0].to_dict()


def run(cfg: DictConfig) -> dict:
    """One job as `scalinglab-train` runs it (skip, resume, train, write run.json), in-process;
    returns its record."""
    from scalinglab.train.run import run_job

    return run_job(cfg, multirun=False, job_num=None)


def curve(job, record: dict) -> list[dict]:
    """The job's learning curve, as train/run.py writes it to curve.csv."""
    from scalinglab.records.schema import RunRecord

    return job.curve.final_rows(RunRecord(**record))


def wheel_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh venv whose only scalinglab is a wheel built from this tree; the dependencies
    (torch, Lightning, ...) come from this environment's site-packages through a .pth path
    entry, which does not activate this environment's editable install. Returns the venv and
    the wheel."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = dist.glob("scalinglab-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip_install(venv, str(wheel))
    return venv, wheel


def pip_install(venv: Path, *args: str) -> None:
    """`pip install --no-deps` into `venv`, with this environment's pip."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "--no-build-isolation", "-q", *args], check=True,
                   capture_output=True, timeout=300)
