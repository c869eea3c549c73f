"""The tuned envelope: fit the law to each size at its best hyperparameters.

A law fitted across sizes that all share one learning rate measures the learning rate as much
as the size (Porian et al. 2024). `best_over` averages seeds, then keeps, for every setting of
the other columns the sweep varied, the row with the lowest y over the `over` columns (e.g.
`module.lr`), and says which value won at each size, and whether it sat at an edge of the swept
grid (the sweep did not bracket that size's optimum). `lr_scaling` fits lr_opt ~ N^-k.

Choosing by a val_* column is honest only when validation is not the test data: with
`data.val_from_train` the runs validate on held-out training examples, and each winner's test_*
score (never used to choose) comes beside it. Without one, it warns.
"""

import warnings

import numpy as np
import pandas as pd

from scalinglab.fit import FitError, scored_on_test
from scalinglab.fit.power import power_fit
from scalinglab.records.tables import override_columns


def _tied_to(table: pd.DataFrame, column: str, x: list[str]) -> bool:
    """A column that is a function of the size (e.g. model.width next to params)."""
    return bool((table.groupby(x, dropna=False)[column].nunique(dropna=False) <= 1).all())


def setting_columns(table: pd.DataFrame, over: list[str], x: list[str],
                    group_by: list[str]) -> tuple[list[str], list[str]]:
    """(the columns that define a configuration, those of them that vary apart from the size):
    the x and group columns, and every other column the sweep overrode, less `over`, the seed
    and the columns that only follow the size."""
    others = [c for c in override_columns(table) if c not in (*over, *x, *group_by, "seed")
              and not _tied_to(table, c, x)]
    varying = [c for c in others if table[c].nunique(dropna=False) > 1]
    return list(dict.fromkeys([*x, *group_by, *others])), varying


def best_over(table: pd.DataFrame, over: list[str], x: list[str], y: str,
              group_by: list[str]) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """The rows of the tuned envelope, what was chosen per configuration (with `at_edge` per
    `over` column), and the varying setting columns (to fit separately)."""
    missing = [c for c in over if c not in table.columns]
    if missing:
        swept = override_columns(table)
        raise FitError(f"--best-over: the table has no column {', '.join(missing)}; the "
                         f"columns the sweep varied are {', '.join(swept) or 'none'}")
    if y not in table.columns:
        raise FitError(f"--best-over: the table has no {y!r} column")
    keys, varying = setting_columns(table, over, x, group_by)
    data = table.dropna(subset=[*x, y, *over])
    if data.empty:
        raise FitError(f"--best-over: no row has {', '.join([*x, y, *over])}")
    test = scored_on_test(data, y)
    if y.startswith("val_") and test is None:
        warnings.warn(f"--best-over chooses by {y}, here the dataset's held-out split, which "
                      "then also scores the winners; data.val_from_train=N validates on N "
                      "training examples instead and keeps the split for test_*", stacklevel=2)
    scores = [y] if test is None else [y, test]
    mean = data.groupby([*keys, *over], dropna=False)[scores].mean().reset_index()  # seeds
    by_setting = mean.groupby(keys, dropna=False)
    best = mean.loc[by_setting[y].idxmin()]
    bounds = {c: [by_setting[c].transform(f) for f in ("min", "max", "nunique")] for c in over}
    choices = []
    for i, row in best.iterrows():
        grid = {c: (lo[i], hi[i], int(n[i])) for c, (lo, hi, n) in bounds.items()}
        choices.append({**{k: _plain(row[k]) for k in keys}, **{c: _plain(row[c]) for c in over},
                        **{c: float(row[c]) for c in scores},
                        "n_values": {c: n for c, (_, _, n) in grid.items()},
                        "at_edge": {c: bool(n > 1 and row[c] in (lo, hi))
                                    for c, (lo, hi, n) in grid.items()}})
    return best.reset_index(drop=True), choices, varying


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def lr_scaling(choices: list[dict], column: str, size: str, group: list[str],
               level: float = 0.95) -> list[dict]:
    """Per group: k in column_opt ~ size^-k (fit/power.py), with its t interval; only over
    sizes whose optimum is bracketed (not at an edge)."""
    frame = pd.DataFrame(choices)
    out = []
    for key, rows in (frame.groupby(group, dropna=False) if group else [((), frame)]):
        inside = rows[[not e[column] for e in rows["at_edge"]]]
        fit = {"group": dict(zip(group, key if isinstance(key, tuple) else (key,), strict=True)),
               "n": len(inside), "n_at_edge": len(rows) - len(inside), "k": None, "ci": None}
        line = power_fit(inside[size], inside[column], level)
        if line is not None:
            fit.update(k=-line.k + 0.0, ci=sorted(-v + 0.0 for v in line.ci), c=line.c)
        out.append(fit)
    return out
