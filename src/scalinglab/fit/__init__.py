"""Fit scaling laws to tables of runs. A table tool: no torch, no Lightning.

    from scalinglab.fit import fit
    report = fit(table, x="params", y="val_loss", law="power_offset", group_by="family")
"""

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from scalinglab.fit.laws import LAWS, Law
from scalinglab.fit.optimize import minimize_law


class FitError(ValueError):
    """Bad input to a fit: the message says what and where, in one line."""


@dataclass
class GroupFit:
    group: dict
    law: str
    params: dict[str, float]
    objective: float
    n_fit: int
    rmse_log_fit: float
    n_holdout: int
    rmse_log_holdout: float | None
    x: list[str] = field(default_factory=list)
    y: str = ""

    def predict(self, xs: np.ndarray) -> np.ndarray:
        """Predicted y at x values, shape (n_x, n) or (n,) for one-column laws."""
        law = LAWS[self.law]
        logx = np.log(np.atleast_2d(np.asarray(xs, dtype=float)))
        return np.exp(law.log_predict(law.theta(self.params), logx))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitReport:
    fits: list[GroupFit]
    data: pd.DataFrame  # the rows used, with `_group` and `_holdout` columns, for plotting

    def to_dict(self) -> dict:
        return {"fits": [f.to_dict() for f in self.fits]}


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    return list(value)


def prepare(table: pd.DataFrame, x: list[str], y: str, group_by: list[str]) -> pd.DataFrame:
    """Check columns and values; keep completed runs with finite values."""
    missing = [c for c in [*x, y, *group_by] if c not in table.columns]
    if missing:
        have = sorted(map(str, table.columns))
        raise FitError(f"column(s) {missing} not in the table; it has {have}")
    if "status" in table.columns:
        bad = table[table["status"] != "completed"]
        if len(bad):
            names = ", ".join(f"{r.get('path', i)} ({r['status']})" for i, r in bad.iterrows())
            warnings.warn(f"skipping {len(bad)} run(s) that did not complete: {names}",
                          stacklevel=3)
        table = table[table["status"] == "completed"]
        if table.empty:
            raise FitError("no completed runs to fit")
    table = table.reset_index(drop=True)  # a copy with unique row labels
    for col in [*x, y]:
        table[col] = pd.to_numeric(table[col], errors="coerce")
    nan = table[[*x, y]].isna().any(axis=1)
    if nan.any():
        warnings.warn(f"dropping {int(nan.sum())} row(s) with a missing or NaN value in "
                      f"{[*x, y]}", stacklevel=3)
        table = table[~nan]
    if table.empty:
        raise FitError(f"no rows with values in {[*x, y]}")
    if (table[y] <= 0).any():
        raise FitError(f"column {y!r} has non-positive values; laws are fitted in log space")
    for col in x:
        if (table[col] <= 0).any():
            raise FitError(f"column {col!r} has non-positive values; laws are fitted in log space")
    return table


def mark_holdout(table: pd.DataFrame, x0: str, group_key: pd.Series, holdout_largest: int,
                 holdout: str | None) -> pd.Series:
    """Rows held out of the fit: the K largest distinct x0 values per group, and/or a query."""
    held = pd.Series(False, index=table.index)
    if holdout:
        try:
            selected = table.query(holdout, engine="python").index
        except Exception as e:
            raise FitError(f"--holdout {holdout!r} is not a valid query: {e}") from None
        held[selected] = True
    if holdout_largest:
        for _, idx in table.groupby(group_key, sort=False).groups.items():
            largest = np.sort(table.loc[idx, x0].unique())[-holdout_largest:]
            held[idx] |= table.loc[idx, x0].isin(largest)
    return held


def _rmse(residuals: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(residuals**2))) if len(residuals) else None


def fit(
    table: pd.DataFrame,
    x: str | Sequence[str] = "params",
    y: str = "val_loss",
    law: str = "power_offset",
    group_by: str | Sequence[str] | None = None,
    holdout_largest: int = 0,
    holdout: str | None = None,
    delta: float = 1e-3,
) -> FitReport:
    """Fit `law` to y(x) in each group; see the README for the law forms."""
    xs, groups = _as_list(x), _as_list(group_by)
    if law not in LAWS:
        raise FitError(f"unknown law {law!r}; choose one of {sorted(LAWS)}")
    spec: Law = LAWS[law]
    if len(xs) != spec.n_x:
        raise FitError(f"law {law!r} takes {spec.n_x} x column(s), got {xs}")
    if holdout_largest < 0:
        raise FitError(f"--holdout-largest must be >= 0, got {holdout_largest}")
    data = prepare(table, xs, y, groups)
    data["_group"] = (data[groups].astype(str).agg("/".join, axis=1) if groups
                      else pd.Series("all", index=data.index))
    data["_holdout"] = mark_holdout(data, xs[0], data["_group"], holdout_largest, holdout)

    fits = []
    for key, rows in data.groupby("_group", sort=True):
        train, test = rows[~rows["_holdout"]], rows[rows["_holdout"]]
        where = f"group {key!r}" if groups else "the table"
        if len(train) < spec.n_params + 1:
            raise FitError(f"{where} has {len(train)} point(s) to fit; law {law!r} needs at "
                           f"least {spec.n_params + 1} ({spec.n_params} parameters + 1)")
        for col in xs:
            if train[col].nunique() < 2:
                raise FitError(f"{where}: column {col!r} is constant; nothing to fit against")
        logx = np.log(train[xs].to_numpy(float).T)
        logy = np.log(train[y].to_numpy(float))
        opt = minimize_law(spec, logx, logy, delta=delta)
        resid = logy - spec.log_predict(opt.theta, logx)
        logx_h = np.log(test[xs].to_numpy(float).T)
        pred_h = spec.log_predict(opt.theta, logx_h) if len(test) else np.array([])
        group = dict(zip(groups, rows[groups].iloc[0].tolist(), strict=True)) if groups else {}
        fits.append(GroupFit(
            group=group, law=law, params=spec.report(opt.theta), objective=opt.objective,
            n_fit=len(train), rmse_log_fit=_rmse(resid), n_holdout=len(test),
            rmse_log_holdout=_rmse(np.log(test[y].to_numpy(float)) - pred_h), x=xs, y=y))
    return FitReport(fits, data)
