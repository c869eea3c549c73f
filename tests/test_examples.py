"""examples/: a user's own package (its model, its datamodule, its conf/), run from its own
directory against scalinglab installed as a wheel, exactly as its README says."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, pip_install, wheel_venv


@pytest.mark.slow
def test_the_digits_example_sweeps_fits_and_reports(tmp_path, cli_env):
    venv, _ = wheel_venv(tmp_path)
    example = tmp_path / "digits"
    shutil.copytree(ROOT / "examples" / "digits", example,
                    ignore=shutil.ignore_patterns("multirun", "outputs", "*.egg-info", "build"))
    pip_install(venv, str(example))  # the user's package, installed as they would

    def cli(*args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=example, env=cli_env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    cli("scalinglab-train", "-m", "experiment=digits_study", "hydra.sweep.dir=multirun/digits")
    runs = sorted((json.loads(p.read_text()) for p in
                   (example / "multirun" / "digits").glob("*/run.json")),
                  key=lambda r: r["params"])
    assert [r["status"] for r in runs] == ["completed"] * 6
    assert {r["family"] for r in runs} == {"resnet"} and {r["data"] for r in runs} == {"Digits"}
    for run, target in zip(runs, (2000, 5000, 12000, 30000, 70000, 150000), strict=True):
        assert abs(run["params"] - target) / target < 0.15, (run["params"], target)
        assert run["train_size"] == 1200 and run["test_loss"] is not None
    assert runs[-1]["val_loss"] < runs[0]["val_loss"]  # bigger is better on digits
    fit = json.loads(cli("scalinglab-fit", "multirun/digits", "--json").stdout)
    (law,) = fit["fits"]
    assert law["group"]["family"] == "resnet" and law["n_fit"] == 6 and law["params"]["alpha"] > 0
    cli("scalinglab-report", "multirun/digits", "--out", "multirun/digits/report")
    assert (example / "multirun" / "digits" / "report" / "report.html").exists()
    assert Path(venv / "bin" / "scalinglab-train").exists()
