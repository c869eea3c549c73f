"""y = c x^k: the one power-law helper."""

import numpy as np
import pytest

from scalinglab.fit.power import power_fit


def test_power_fit_recovers_the_exponent_and_prefactor():
    n = np.geomspace(1e3, 1e6, 8)
    f = power_fit(n, 3 * n**0.7)
    assert f.k == pytest.approx(0.7) and f.c == pytest.approx(3) and f.n == 8
    assert f(1e7) == pytest.approx(3 * 1e7**0.7)
    assert f.ci[0] == pytest.approx(0.7) and f.ci[1] == pytest.approx(0.7)  # exact: no spread


def test_its_interval_is_a_t_interval_on_the_slope():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e3, 1e6, 10)
    f = power_fit(n, 2 * n**-0.5 * np.exp(rng.normal(0, 0.05, 10)), level=0.9)
    half = (f.ci[1] - f.ci[0]) / 2
    assert f.ci[0] < -0.5 < f.ci[1] and half == pytest.approx(1.8595 * f.k_stderr, rel=1e-3)


def test_too_few_points_or_one_x_fit_nothing_and_bad_points_are_left_out():
    n = np.geomspace(1e3, 1e6, 8)
    assert power_fit(n[:2], n[:2]) is None  # fewer than 3 points
    assert power_fit(n[:2], n[:2], min_points=2).k == pytest.approx(1.0)
    assert power_fit([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]) is None  # one x
    y = n**2
    y[0], y[1] = -1.0, np.nan  # no log of these: left out, not fitted
    assert power_fit(n, y).k == pytest.approx(2.0) and power_fit(n, y).n == 6
