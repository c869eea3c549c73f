"""Helpers shared by the tests: run a console script as a user would, train in-process."""

import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from scalinglab import CONF_DIR  # noqa: F401  (the configs the tests compose)

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], env: dict, cwd: Path,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a console script the way a user would, from `cwd`."""
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run([str(exe), *args[1:]], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def fit(cfg: DictConfig, *callbacks):
    """Train in-process through the recipe, plus test `callbacks`, resuming the job's latest
    checkpoint as `scalinglab-train` would; returns (module, trainer, record)."""
    from scalinglab.train.recipe import train

    built: dict = {}
    record = train(cfg, cfg.paths.output_dir, built=built, callbacks=callbacks)
    trainer = built["trainer"]
    return trainer.lightning_module, trainer, record.to_dict()


def run(cfg: DictConfig) -> dict:
    """One job as `scalinglab-train` runs it (skip, resume, train, write run.json), in-process;
    returns its record."""
    from scalinglab.train.run import run_job

    return run_job(cfg, cfg.paths.output_dir, multirun=False, job_num=None)


def curve(trainer, record: dict) -> list[dict]:
    """The job's learning curve, as train/run.py writes it to curve.csv."""
    from scalinglab.records import RunRecord
    from scalinglab.train.curve import LearningCurve

    (learning_curve,) = [c for c in trainer.callbacks if isinstance(c, LearningCurve)]
    return learning_curve.final_rows(RunRecord(**record))
