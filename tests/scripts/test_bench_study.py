"""scripts/bench_study.py restates two of scalinglab's choices so that its plain side imports no
Lightning; these tests keep them the same, and check that its comparison catches other work."""

import importlib.util

import pytest

from scalinglab.callbacks.curve import log_steps
from scalinglab.data.tensors import VAL_SEED
from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "bench_study.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plain_side_holds_out_and_evaluates_as_scalinglab_does(bench):
    assert bench.VAL_SEED == VAL_SEED
    for total in (1, 2, 27, 810, 1000, 4321):
        for points in (0, 1, 8, 12):
            assert bench.log_steps(total, points) == log_steps(total, points)


def test_other_work_is_reported_job_by_job(bench):
    ours = {"mlp 1000": {"val_loss": 1.3225, "test_loss": 1.2821, "curve": {1: 2.3, 12: 1.9}}}
    same = {"mlp 1000": {"val_loss": 1.32252, "test_loss": 1.2821, "curve": {"1": 2.3,
                                                                           "12": 1.9}}}
    assert bench.disagreements(ours, same) == []
    other = {"mlp 1000": {"val_loss": 1.3301, "test_loss": 1.2821, "curve": {"1": 2.3}}}
    found = bench.disagreements(ours, other)
    assert any("val_loss: 1.3225 against 1.3301" in d for d in found)
    assert any("curve steps: [1, 12] against [1]" in d for d in found)
    assert any("curve step 12: 1.9 against None" in d for d in found)
    assert bench.disagreements(ours, {"cnn 1000": same["mlp 1000"]}) != []
    diverged = {"mlp 1000": {**same["mlp 1000"], "val_loss": None}}
    assert bench.disagreements(ours, diverged) == ["mlp 1000 val_loss: 1.3225 against None"]
