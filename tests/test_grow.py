"""hydra/sweeper=grow: the sizing loop. Its decisions on tables of records (fast), and real
searches launched as a user would, on the teacher-student task and MNIST-1D (slow)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from scalinglab import ConfigError
from scalinglab.grow import Round, Settings, Target, decide, next_sizes, summary
from tests.helpers import run_cli


def settings(target="val_acc>=0.9", **kw) -> Settings:
    return Settings.from_config(target=target, start=kw.pop("start", [1000, 3000]), **kw)


def records(sizes, acc, flops_per_param=1e4, seeds=1) -> list[dict]:
    """Completed jobs with val_acc = acc(N) (+ a small seed offset), FLOPs proportional to N."""
    return [{"status": "completed", "job": f"n{n}-s{s}", "params": int(n),
             "val_acc": float(acc(n)) + 1e-4 * s, "train_flops": flops_per_param * n,
             "time_s": 1.0} for n in sizes for s in range(seeds)]


def saturating(n, floor=0.2, a=30.0, alpha=0.5):
    return 1 - (floor + a * n**-alpha)


@pytest.mark.parametrize("text, match", [
    ("val_acc>0.9", "write it as COLUMN>=VALUE"),
    ("val_accuracy>=0.9", "not a run-record column"),
    ("val_acc<=0.9", "an accuracy is grown to with >="),
    ("val_loss>=0.5", "an accuracy is grown to with >="),
    ("val_acc>=1.2", "lies in \\(0, 1\\)"),
    ("test_acc>=0.9", "is the test split, which a search must not choose by"),
])
def test_a_malformed_target_is_a_config_error(text, match):
    with pytest.raises(ConfigError, match=match):
        Target.parse(text)


def test_targets_on_accuracy_and_loss():
    acc, loss = Target.parse("val_acc >= 0.93"), Target.parse("best_val_loss<=0.5")
    assert acc.met(0.93) and not acc.met(0.92) and acc.error(0.93) == pytest.approx(0.07)
    assert acc.fitted == "1 - val_acc" and loss.fitted == "best_val_loss"
    assert loss.met(0.5) and not loss.met(0.51) and loss.error(0.4) == 0.4


@pytest.mark.parametrize("kw, match", [
    ({"start": []}, "start is empty"),
    ({"max_params": 500}, "below the largest start size"),
    ({"per_round": 0}, "per_round must be >= 1"),
    ({"growth": 1}, "growth must be > 1"),
])
def test_bad_settings_are_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        settings(**kw)


def test_a_met_target_answers_with_the_smallest_size_that_meets_it():
    s = settings("val_acc>=0.5")
    history = records([1000, 3000, 10000], lambda n: 0.4 if n < 3000 else 0.6)
    rnd = decide(Round(2, [3000, 10000]), history, s, spent_flops=0)
    assert rnd.decision == "met" and "3,000 params" in rnd.why
    doc = summary([rnd], history, s)
    assert doc["status"] == "met" and doc["answer"]["params"] == 3000
    assert doc["answer"]["largest_missing"] == 1000 and doc["n_jobs"] == 3


def test_seeds_are_averaged_before_the_target_is_judged():
    s = settings("val_acc>=0.5")
    history = [*records([1000], lambda n: 0.52), *records([1000], lambda n: 0.46)]
    assert decide(Round(1, [1000]), history, s, 0).decision == "grow"  # mean 0.49


def test_two_sizes_grow_geometrically_up_to_the_growth_factor():
    s = settings(growth=4, per_round=2)
    rnd = decide(Round(1, [1000, 3000]), records([1000, 3000], saturating), s, 0)
    assert rnd.decision == "grow" and rnd.fit is None
    assert rnd.next_sizes == [6000, 12000] and max(rnd.next_sizes) <= 4 * 3000


def test_the_next_round_brackets_the_prediction():
    # error = 0.02 + 30 N^-0.5 reaches 0.1 (val_acc 0.9) at N = (30 / 0.08)^2 ~ 1.4e5
    s = settings(growth=100, bootstrap=50)
    acc = lambda n: saturating(n, floor=0.02)  # noqa: E731
    rnd = decide(Round(2, [3000, 10000]), records([1000, 3000, 10000, 30000], acc), s, 0)
    n_star = (30 / 0.08) ** 2
    assert rnd.decision == "grow" and rnd.fit["law"] == "power_offset"
    assert rnd.prediction["params"] == pytest.approx(n_star, rel=0.05)
    lo, hi = rnd.next_sizes
    assert lo <= n_star <= hi and hi <= 100 * 30000


def test_never_more_than_the_growth_factor_past_the_largest_size():
    s = settings(growth=2)
    sizes, how = next_sizes(10000, {"params": 1e6, "interval": [5e5, 2e6]}, s)
    assert max(sizes) == 20000 and "capped" in how
    sizes, how = next_sizes(10000, {"params": 8000, "interval": [6000, 9000]}, s)
    assert min(sizes) > 10000 and "already trained" in how


def test_a_target_beyond_the_fitted_floor_is_unreachable_with_its_confidence():
    s = settings("val_acc>=0.9", bootstrap=100, confidence=0.9)
    sizes = [1000, 3000, 10000, 30000, 100000]
    history = records(sizes, saturating)  # floor 0.2: acc at most 0.8
    rnd = decide(Round(3, sizes[-2:]), history, s, 0)
    assert rnd.decision == "unreachable" and rnd.fit["p_unreachable"] >= 0.9
    assert "bootstrap refits put the floor" in rnd.why
    # with 4 sizes the floor's bootstrap is overconfident: the search grows instead
    rnd = decide(Round(2, sizes[2:4]), history[:4], s, 0)
    assert rnd.decision == "grow" and "too few sizes to stop on" in rnd.why


@pytest.mark.parametrize("kw, why", [
    ({"max_rounds": 2}, "max_rounds=2 reached"),
    ({"max_params": 5000}, "pass max_params=5000"),
    ({"max_train_flops": 1e8}, "past max_train_flops"),
])
def test_budgets_stop_the_search_before_the_round_that_would_pass_them(kw, why):
    s = settings(**kw)
    history = records([1000, 3000], saturating)  # 4e7 FLOPs spent
    rnd = decide(Round(2, [1000, 3000]), history, s, spent_flops=4e7)
    assert rnd.decision == "budget" and why in rnd.why


@pytest.mark.parametrize("target, kw, why", [
    # error 0.9 N^-0.05: 95% needs ~1e25 parameters
    ("val_acc>=0.95", {"max_params": 1e6}, "] (95% interval) lies past max_params=1e+06"),
    # error 30 N^-0.5: 99% needs 9e6 parameters, ~9e10 FLOPs, within max_params
    ("val_acc>=0.99", {"max_params": 1e8, "max_train_flops": 1e10},
     "FLOPs at its low end, past max_train_flops=1e+10"),
])
def test_a_prediction_past_the_limits_stops_the_search_instead_of_growing_toward_it(
        target, kw, why):
    s = settings(target, **kw)
    acc = (lambda n: 1 - 0.9 * n**-0.05) if target.endswith("0.95") else (
        lambda n: 1 - 30 * n**-0.5)
    sizes = [1000, 3000, 10000, 30000, 100000]
    rnd = decide(Round(3, sizes[-1:]), records(sizes, acc), s, spent_flops=1.44e9)
    assert rnd.decision == "budget" and why in rnd.why, rnd.why
    assert rnd.why.startswith("the predicted size") and not rnd.next_sizes
    # from 4 sizes a prediction is not trusted to stop on: the search grows
    assert decide(Round(2, sizes[2:4]), records(sizes[:4], acc), s, 4.4e8).decision == "grow"


def test_failed_jobs_are_reported_and_the_search_goes_on():
    s = settings()
    history = [*records([1000, 3000], saturating),
               {"status": "diverged", "job": "x", "params": 2000, "val_acc": None}]
    rnd = decide(Round(1, [1000, 2000, 3000]), history, s, 0)
    assert rnd.decision == "grow"
    only_failed = decide(Round(1, [1000]), [{"status": "failed", "params": None}], s, 0)
    assert only_failed.decision == "failed"


def test_the_sweeper_chooses_the_size_itself():
    from hydra_plugins.scalinglab_grow import GrowSweeper

    sweeper = GrowSweeper(params={"seed": "0,1"})
    assert sweeper._base_jobs(["trainer.max_epochs=3"]) == [
        ["seed=0", "trainer.max_epochs=3"], ["seed=1", "trainer.max_epochs=3"]]
    with pytest.raises(ConfigError, match="the grow sweeper chooses model.target_params"):
        sweeper._base_jobs(["model.target_params=1000,2000"])


# The CLI, as a user runs it: a bad setting is one line and exit 2 before any training (the
# messages themselves are checked in-process above).
@pytest.mark.parametrize("setting,message", [
    ("hydra.sweeper.target='val_acc=0.9'", "write it as COLUMN>=VALUE"),
    ("pack=[seed]", "hydra/sweeper=grow does not pack jobs"),
])
def test_cli_bad_settings_exit_2_before_training(tmp_path, cli_env, setting, message):
    result = subprocess.run([sys.executable, "-m", "scalinglab.train", "-m",
                             "hydra/sweeper=grow", setting, f"hydra.sweep.dir={tmp_path / 's'}"],
                            cwd=tmp_path, env=cli_env, capture_output=True, text=True,
                            timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-2000:]
    assert [line for line in out.splitlines() if "error" in line.lower()] == [
        next(line for line in out.splitlines() if message in line)]
    assert not list(tmp_path.glob("s/*/run.json"))  # nothing trained


# module.lr=0.01: the targets below need 2+ rounds at this LR (at 0.04 the first round meets 0.74)
TEACHER = ["data=synthetic", "data.train_size=4000", "trainer.max_epochs=5", "logger=none",
           "module.lr=0.01", "hydra.sweeper.start=[300,1000]"]


def grow(tmp_path, cli_env, *overrides, sweep="sweep"):
    result = run_cli(["scalinglab-train", "-m", "hydra/sweeper=grow", *TEACHER, *overrides,
                      f"hydra.sweep.dir={tmp_path / sweep}"], cli_env, tmp_path)
    doc = json.loads((tmp_path / sweep / "grow.json").read_text())
    return result, doc


@pytest.mark.slow
def test_a_reachable_target_is_met_and_a_rerun_trains_nothing(tmp_path, cli_env):
    result, doc = grow(tmp_path, cli_env, "hydra.sweeper.target='val_acc>=0.74'")
    assert result.returncode == 0, result.stderr[-3000:]
    assert doc["status"] == "met" and len(doc["rounds"]) >= 2
    answer = doc["answer"]
    assert answer["val_acc"] >= 0.74 and answer["largest_missing"] < answer["params"]
    trained = [j for r in doc["rounds"] for j in r["jobs"]]
    assert all(j["value"] < 0.74 for j in trained if j["params"] < answer["params"])
    assert doc["n_jobs"] == len(trained) and doc["train_flops"] == pytest.approx(
        sum(j["train_flops"] for j in trained))
    lines = [line for line in result.stdout.splitlines() if "] round " in line and "->" in line]
    assert len(lines) == len(doc["rounds"])  # one line per round
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep").glob("*/run.json")}

    again, doc_again = grow(tmp_path, cli_env, "hydra.sweeper.target='val_acc>=0.74'")
    assert again.returncode == 0, again.stderr[-3000:]
    assert doc_again["answer"] == answer and doc_again["rounds"] == doc["rounds"]
    assert "0 launched" in again.stdout and " launched" in again.stdout
    assert all(f"{len(r['jobs'])} job(s) already completed, 0 launched" in again.stdout
               for r in doc["rounds"])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # no record rewritten


@pytest.mark.slow
def test_an_unreachable_target_stops_within_3_rounds(tmp_path, cli_env):
    # 4000 examples of the teacher cap the accuracy near 0.76 at every size
    result, doc = grow(tmp_path, cli_env, "hydra.sweeper.target='val_acc>=0.9'")
    assert result.returncode == 0, result.stderr[-3000:]
    assert doc["status"] == "unreachable" and len(doc["rounds"]) <= 3
    last = doc["rounds"][-1]
    assert last["fit"]["law"] == "power_offset" and last["fit"]["p_unreachable"] >= 0.95
    assert 1 - last["fit"]["params"]["E"] < 0.9  # the fitted ceiling is below the target


@pytest.mark.slow
def test_a_search_on_mnist1d_with_seeds(tmp_path, cli_env):
    """MNIST-1D's MLP, 2 seeds per size: every other swept override multiplies each round."""
    result = run_cli(["scalinglab-train", "-m", "hydra/sweeper=grow", "seed=0,1",
                      "trainer.max_epochs=10", "logger=none", "hydra.sweeper.start=[300,1000]",
                      "hydra.sweeper.target='val_acc>=0.55'", "hydra/launcher=local_parallel",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((tmp_path / "sweep" / "grow.json").read_text())
    assert doc["status"] == "met"
    for rnd in doc["rounds"]:
        assert len(rnd["jobs"]) == 2 * len(rnd["sizes"])
    runs = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/run.json")]
    assert sorted({r["seed"] for r in runs}) == [0, 1] and len(runs) == doc["n_jobs"]
    assert (tmp_path / "sweep" / "runs.csv").exists()
    report = run_cli(["scalinglab-report", str(tmp_path / "sweep"), "--bootstrap", "20"],
                     cli_env, tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    page = (tmp_path / "sweep" / "report" / "report.html").read_text()
    assert "Growing to the target" in page and 'src="grow.png"' in page
    assert np.isfinite(doc["time_s"]) and doc["time_s"] > 0
