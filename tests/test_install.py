"""The package installs anywhere: a wheel built from this tree, installed into a fresh
environment, trains a 3-job multirun and fits it from a directory outside the repository."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_a_wheel_trains_and_fits_outside_the_repository(tmp_path, cli_env):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = dist.glob("scalinglab-*.whl")
    # A fresh venv: the wheel is its only scalinglab; the dependencies (torch, Lightning, ...)
    # come from this environment's site-packages through a .pth path entry, which does not
    # activate this environment's editable install of the repository.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "-q", str(wheel)], check=True, capture_output=True, timeout=300)
    where = subprocess.run([str(py), "-c", "import scalinglab; print(scalinglab.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv))  # the installed wheel, not the source tree

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sweep = elsewhere / "sweep"
    train = subprocess.run([str(venv / "bin" / "scalinglab-train"), "-m", "model.width=4,8,16",
                            "trainer.max_epochs=1", "data.train_size=512",
                            f"hydra.sweep.dir={sweep}"], cwd=elsewhere, env=cli_env,
                           capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    assert len(list(sweep.glob("*/run.json"))) == 3
    fit = subprocess.run([str(venv / "bin" / "scalinglab-fit"), str(sweep), "--law", "power",
                          "--json"], cwd=elsewhere, env=cli_env, capture_output=True, text=True,
                         timeout=300)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert json.loads(fit.stdout)["fits"][0]["n_fit"] == 3
