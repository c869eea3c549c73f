import numpy as np
import pandas as pd
import pytest

from scalinglab.fit import fit
from scalinglab.fit.laws import LAWS

TRUTH = {"E": 0.5, "A": 30.0, "alpha": 0.4}


def replicate(seed: int, sizes: int = 10, seeds_per_size: int = 2, noise: float = 0.03):
    rng = np.random.default_rng(seed)
    x = np.repeat(np.geomspace(1e3, 1e7, sizes), seeds_per_size)
    spec = LAWS["power_offset"]
    y = np.exp(spec.log_predict(spec.theta(TRUTH), np.log(x)[None]) + rng.normal(0, noise, x.size))
    return pd.DataFrame({"params": x, "val_loss": y, "seed": np.tile(range(seeds_per_size), sizes)})


@pytest.mark.slow  # 40 replicates x 150 refits: ~35 s
def test_intervals_cover_the_true_exponent():
    # 40 replicates with known truth: the 95% percentile interval of alpha must contain 0.4
    # in at least 85% of them (percentile bootstrap under-covers a little on few points).
    hits = 0
    for rep in range(40):
        f = fit(replicate(rep), bootstrap=150, seed=rep).fits[0]
        lo, hi = f.ci["alpha"]
        hits += lo <= TRUTH["alpha"] <= hi
    assert hits / 40 >= 0.85


def test_bootstrap_resamples_configurations_not_rows():
    # Two seeds per size: a resample holds both seeds of a size or neither, so every
    # resample has an even number of rows at every size. Check through the samples' spread:
    # duplicated runs are ignored if the two seeds are identical.
    table = replicate(0)
    table.loc[table["seed"] == 1, "val_loss"] = table.loc[table["seed"] == 0, "val_loss"].to_numpy()
    f = fit(table, bootstrap=50, seed=1).fits[0]
    single = fit(table[table["seed"] == 0], bootstrap=50, seed=1).fits[0]
    # identical seeds add no information: the intervals match the one-seed table's exactly
    assert f.ci["alpha"] == pytest.approx(single.ci["alpha"], rel=1e-6)


def test_intervals_for_every_parameter_and_derived_quantity():
    f = fit(replicate(3), bootstrap=40, target=0.6, seed=0).fits[0]
    assert set(f.ci) == {"E", "A", "alpha", "target_x"}
    assert f.derived["target_reachable_frac"] == 1.0  # 0.6 is well above E = 0.5
    for name, (lo, hi) in f.ci.items():
        value = {**f.params, **f.derived}[name]
        assert lo <= hi
        assert lo <= value * 1.5 and value <= hi * 1.5  # the point estimate sits near its interval
    assert len(f.samples) == 40


def test_bootstrap_is_reproducible_with_a_seed():
    a = fit(replicate(5), bootstrap=20, seed=7).fits[0].ci
    b = fit(replicate(5), bootstrap=20, seed=7).fits[0].ci
    assert a == b
