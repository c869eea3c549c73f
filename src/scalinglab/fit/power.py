"""y = c x^k by least squares on log y against log x, with a t interval on k: the one power-law
helper behind every straight line in log-log that the project draws (resources against size in
the report, the best LR against size, N_opt and D_opt against compute). Scaling laws with an
offset or several terms are laws.py's."""

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class PowerFit:
    k: float                 # the exponent
    k_stderr: float
    ci: list[float]          # k's t interval at `level`
    c: float                 # the prefactor
    n: int                   # points fitted

    def __call__(self, x):
        return self.c * np.asarray(x, dtype=float) ** self.k


def power_fit(x, y, level: float = 0.95, min_points: int = 3) -> PowerFit | None:
    """The fit over the points where x and y are positive and finite; None with fewer than
    `min_points` such points or a single x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < min_points or len(np.unique(x)) < 2:
        return None
    r = stats.linregress(np.log(x), np.log(y))
    # one y at every x: an exact line, whatever the float noise in the regression
    err = 0.0 if len(np.unique(y)) == 1 else float(r.stderr)
    half = float(stats.t.ppf((1 + level) / 2, len(x) - 2)) * err if len(x) > 2 else 0.0
    k = float(r.slope) + 0.0  # no -0.0
    return PowerFit(k, err, [k - half, k + half], float(np.exp(r.intercept)), int(len(x)))
