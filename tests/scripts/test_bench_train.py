import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow  # a benchmark: two training paths, ~8 s
def test_bench_train_runs_and_emits_json(cli_env, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_train.py"), "--cases",
                          "tiny", "--epochs", "2", "--repeats", "1", "--json",
                          "data.num_samples=2500"],  # a Hydra override for both sides
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    (case,) = doc["cases"]
    # the timed steps: all but the first; 2000 training examples less the 500 that validate
    assert case["name"] == "tiny" and case["steps"] == 2 * (1500 // 256) - 1
    assert case["raw_steps_per_s"] > 0 and case["scalinglab_steps_per_s"] > 0
    # one repeat: the median ratio is that repeat's ratio
    assert case["ratio"] == pytest.approx(case["scalinglab_steps_per_s"] / case["raw_steps_per_s"])
    assert case["ratio_min"] == case["ratio"] == case["ratio_max"]
