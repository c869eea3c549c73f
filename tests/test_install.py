"""The package installs anywhere. The configs live in conf/ at the top of the repository and
ship inside the package: an editable install finds them there, a wheel carries them, and a
`./conf` in the directory a user launches from extends them either way."""

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from tests.helpers import CONF_DIR, ROOT, wheel_venv

MINE = """# @package _global_
# a user's own experiment, in ./conf/experiment/ of the directory they launch from
model:
  width: 6
hydra:
  sweeper:
    params:
      seed: 0,1
"""


def test_the_package_configs_are_the_repositorys_conf():
    # this (editable) install reads conf/ itself: an edit there is what the next run composes
    assert Path(CONF_DIR).resolve() == (ROOT / "conf").resolve()


def test_a_conf_directory_where_you_launch_extends_the_configs(tmp_path, monkeypatch):
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text(MINE)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "local" / "default.yaml").write_text("# @package _global_\nseed: 7\n")
    monkeypatch.chdir(tmp_path)  # the search path's file://conf is relative to it
    with initialize_config_module("scalinglab.conf", version_base="1.3"):  # as the app does
        cfg = compose("train", overrides=["experiment=mine"], return_hydra_config=True)
    assert cfg.model.width == 6 and cfg.hydra.sweeper.params.seed == "0,1"
    assert cfg.seed == 7  # conf/local/default.yaml, loaded into every run when it exists
    assert cfg.data._target_ == "scalinglab.data.MNIST1D"  # the package's own configs too


@pytest.mark.slow
def test_a_wheel_trains_and_fits_outside_the_repository(tmp_path, cli_env):
    venv, wheel = wheel_venv(tmp_path)  # the wheel is its only scalinglab
    py = venv / "bin" / "python"
    where = subprocess.run([str(py), "-c", "import scalinglab; print(scalinglab.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv))  # the installed wheel, not the source tree

    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if ".dist-info/" not in n}
    # exactly the tree's modules (nothing stale from an earlier build), and the configs and
    # the report's template, but no user's conf/local/
    src, conf = ROOT / "src", ROOT / "conf"  # src/scalinglab/conf is a link to conf/
    modules = {str(p.relative_to(src)) for p in src.rglob("*.py") if "__pycache__" not in p.parts}
    modules |= {f"scalinglab/conf/{p.relative_to(conf)}" for p in conf.rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == modules
    configs = {f"scalinglab/conf/{p.relative_to(conf)}"
               for p in conf.rglob("*.yaml") if "local" not in p.parts}
    assert configs <= names and "scalinglab/report/page.html.j2" in names
    assert not [n for n in names if n.startswith("scalinglab/conf/local/")]

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "conf" / "experiment").mkdir(parents=True)
    (elsewhere / "conf" / "experiment" / "mine.yaml").write_text(MINE)
    sweep = elsewhere / "sweep"
    train = subprocess.run([str(venv / "bin" / "scalinglab-train"), "-m", "experiment=mine",
                            "model.width=4,8,16", "trainer.max_epochs=1",
                            "data.train_size=512", f"hydra.sweep.dir={sweep}"], cwd=elsewhere,
                           env=cli_env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/run.json")]
    assert len(runs) == 6 and sorted({r["seed"] for r in runs}) == [0, 1]  # its own grid
    fit = subprocess.run([str(venv / "bin" / "scalinglab-fit"), str(sweep), "--law", "power",
                          "--json"], cwd=elsewhere, env=cli_env, capture_output=True, text=True,
                         timeout=300)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert json.loads(fit.stdout)["fits"][0]["n_fit"] == 6
