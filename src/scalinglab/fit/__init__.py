"""Fit scaling laws to tables of runs. A table tool: no torch, no Lightning.

    from scalinglab.fit import fit
    report = fit(table, x="params", y="val_loss", law="power_offset", group_by="family")
"""

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from scalinglab.fit.bootstrap import percentile_intervals, resample_fits
from scalinglab.fit.derived import derive
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
    label: str = "all"  # the group's values joined by "/": its key in FitReport.data
    derived: dict[str, float | None] = field(default_factory=dict)
    ci: dict[str, list[float] | None] | None = None
    selection: dict | None = None
    samples: list[dict] = field(default_factory=list, repr=False)  # bootstrap refits

    def predict(self, xs: np.ndarray, params: dict[str, float] | None = None) -> np.ndarray:
        """Predicted y at x values, shape (n_x, n) or (n,) for one-column laws."""
        law = LAWS[self.law]
        logx = np.log(np.atleast_2d(np.asarray(xs, dtype=float)))
        return np.exp(law.log_predict(law.theta(params or self.params), logx))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "samples"}


@dataclass
class FitReport:
    fits: list[GroupFit]
    data: pd.DataFrame  # the rows used, with `_group` and `_holdout` columns, for plotting
    ci: float = 0.95    # the level of the bootstrap intervals (and of the plotted bands)

    def to_dict(self) -> dict:
        return {"fits": [f.to_dict() for f in self.fits]}


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    return list(value)


DATA_AXES = ("train_size", "examples_seen", "tokens_seen")  # columns that measure a run's data


def data_column(xs: Sequence[str]) -> str:
    """D, the data axis, for a law or frontier over the x columns `xs`: the second one when
    there are two (tokens_seen for a language model), else the examples seen."""
    return xs[1] if len(xs) > 1 else "examples_seen"


def default_groups(table: pd.DataFrame, x: str | Sequence[str]) -> list[str]:
    """What scalinglab-fit and the report fit separately unless told: each model family, and
    each training-set size when the runs have several and no x column is a data axis (a law in
    N alone, fitted across several D, would mix two axes)."""
    groups = ["family"] if "family" in table.columns else []
    if ("train_size" in table.columns and table["train_size"].nunique() > 1
            and not set(_as_list(x)) & set(DATA_AXES)):
        groups.append("train_size")
    return groups


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


def aicc(rmse: float, n: int, k: int) -> float:
    """Small-sample Akaike criterion from the RMSE of n log residuals, k parameters."""
    rss = max(n * rmse**2, 1e-300)
    penalty = 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else np.inf
    return n * np.log(rss / n) + 2 * k + penalty


def flops_per_param_per_example(table: pd.DataFrame, data: str = "examples_seen") -> float:
    """The sweep's measured k in C = k N D, D in the `data` column's unit (examples, or tokens
    for a language model): median of train_flops / (params x data)."""
    cols = ["train_flops", "params", data]
    if any(c not in table.columns for c in cols):
        raise FitError(f"--flops-per-param measured needs columns {cols}")
    k = (table["train_flops"] / (table["params"] * table[data])).dropna()
    if k.empty:
        raise FitError("--flops-per-param measured: no rows with train_flops")
    return float(k.median())


def _fit_one(spec: Law, train: pd.DataFrame, test: pd.DataFrame, xs: list[str], y: str,
             delta: float) -> tuple[GroupFit, np.ndarray]:
    logx = np.log(train[xs].to_numpy(float).T)
    logy = np.log(train[y].to_numpy(float))
    opt = minimize_law(spec, logx, logy, delta=delta)
    resid = logy - spec.log_predict(opt.theta, logx)
    held = np.array([])
    if len(test):
        held = np.log(test[y].to_numpy(float)) - spec.log_predict(
            opt.theta, np.log(test[xs].to_numpy(float).T))
    result = GroupFit(group={}, law=spec.name, params=spec.report(opt.theta),
                      objective=opt.objective, n_fit=len(train), rmse_log_fit=_rmse(resid),
                      n_holdout=len(test), rmse_log_holdout=_rmse(held),
                      x=xs, y=y)
    return result, opt.theta


def _choose(candidates: dict[str, tuple[GroupFit, np.ndarray]], train: pd.DataFrame,
            xs: list[str], y: str, delta: float) -> dict:
    """Pick a law using the fitted rows only, never the held-out ones: each law is refitted
    without the largest fitted sizes (a quarter of them, at least one) and scored by its RMSE
    of log y on them, an extrapolation inside the fitted rows. Where some law cannot be
    refitted on what is left, the choice is by AICc on the fitted rows. The refit starts from
    the law's own starts, never from its fit to all the rows, which has seen the scored ones."""
    sizes = np.sort(train[xs[0]].unique())
    k = max(1, len(sizes) // 4)
    inner = train[xs[0]] >= sizes[-k]
    rest, probe = train[~inner], train[inner]
    can_refit = all(len(rest) >= LAWS[n].n_params + 1 for n in candidates) and all(
        rest[c].nunique() >= 2 for c in xs)
    if can_refit:
        scores = {name: _fit_one(LAWS[name], rest, probe, xs, y, delta)[0].rmse_log_holdout
                  for name in candidates}
        criterion = "rmse_log_inner"
        how = (f"refitted without the {k} largest fitted {xs[0]} value(s) (>= {sizes[-k]:.4g}) "
               "and scored on them; the held-out rows were not used")
    else:
        n = len(train)
        scores = {name: aicc(f.rmse_log_fit, n, LAWS[name].n_params)
                  for name, (f, _) in candidates.items()}
        criterion = "aicc"
        how = ("by AICc on the fitted rows (too few sizes to refit without the largest); "
               "the held-out rows were not used")
    chosen = min(scores, key=scores.get)
    ranked = ", ".join(f"{k}={v:.4g}" for k, v in sorted(scores.items(), key=lambda kv: kv[1]))
    reason = f"{chosen} has the lowest {criterion} ({ranked}): {how}"
    return {"criterion": criterion, "scores": scores, "chosen": chosen, "reason": reason}


def _fit_group(key: str, group: dict, train: pd.DataFrame, test: pd.DataFrame,
               usable: list[str], xs: list[str], y: str, auto: bool, delta: float,
               bootstrap: int, seed: int, ci: float, target: float | None,
               budgets: list[float], k: float) -> GroupFit:
    """One group's fit: its law (chosen among `usable` when `auto`), derived quantities and
    bootstrap intervals."""
    candidates = {n: _fit_one(LAWS[n], train, test, xs, y, delta) for n in usable}
    selection = _choose(candidates, train, xs, y, delta) if auto else None
    result, theta = candidates[selection["chosen"] if selection else usable[0]]
    spec = LAWS[result.law]
    result.group, result.label, result.selection = group, key, selection
    logx = np.log(train[xs].to_numpy(float).T)

    def derive_fn(params):
        return derive(spec, params, logx, target, budgets, k)

    result.derived = derive_fn(result.params)
    if bootstrap:
        clusters = train.groupby(xs, sort=False).ngroup().to_numpy()
        result.samples = resample_fits(spec, logx, np.log(train[y].to_numpy(float)),
                                       clusters, bootstrap, seed, delta, theta, derive_fn)
        result.ci = percentile_intervals(result.samples, ci)
        if target is not None:  # the interval of target_x covers reachable resamples only
            reached = [s.get("target_x") is not None for s in result.samples]
            result.derived["target_reachable_frac"] = float(np.mean(reached))
    return result


def fit(
    table: pd.DataFrame,
    x: str | Sequence[str] = "params",
    y: str = "val_loss",
    law: str = "power_offset",
    group_by: str | Sequence[str] | None = None,
    holdout_largest: int = 0,
    holdout: str | None = None,
    delta: float = 1e-3,
    bootstrap: int = 0,
    seed: int = 0,
    ci: float = 0.95,
    target: float | None = None,
    budgets: Sequence[float] | None = None,
    flops_per_param: float | str = 6.0,
    workers: int = 1,
) -> FitReport:
    """Fit `law` to y(x) in each group. `law="auto"` picks among the laws that take as many
    x columns as given; `workers` > 1 fits groups in that many processes (joblib), with the
    same results. See the README ("Fitting") for the laws and outputs."""
    xs, groups = _as_list(x), _as_list(group_by)
    if law != "auto" and law not in LAWS:
        raise FitError(f"unknown law {law!r}; choose one of {sorted(LAWS)} or 'auto'")
    names = [n for n, spec in LAWS.items() if spec.n_x == len(xs)] if law == "auto" else [law]
    if not names or (law != "auto" and LAWS[law].n_x != len(xs)):
        need = LAWS[law].n_x if law != "auto" else "1 or 2"
        raise FitError(f"law {law!r} takes {need} x column(s), got {xs}")
    if holdout_largest < 0:
        raise FitError(f"--holdout-largest must be >= 0, got {holdout_largest}")
    if bootstrap < 0 or not 0 < ci < 1:
        raise FitError(f"need --bootstrap >= 0 and 0 < --ci < 1, got {bootstrap}, {ci}")
    if target is not None and target <= 0:
        raise FitError(f"--target must be positive, got {target}")
    if workers < 1:
        raise FitError(f"--workers must be >= 1, got {workers}")
    data = prepare(table, xs, y, groups)
    k = (flops_per_param_per_example(data, data_column(xs)) if flops_per_param == "measured"
         else float(flops_per_param))
    data["_group"] = (data[groups].map(str).agg("/".join, axis=1) if groups
                      else pd.Series("all", index=data.index))
    data["_holdout"] = mark_holdout(data, xs[0], data["_group"], holdout_largest, holdout)

    work = []  # every group checked before any is fitted: bad input fails at once
    for key, rows in data.groupby("_group", sort=True):
        train, test = rows[~rows["_holdout"]], rows[rows["_holdout"]]
        where = f"group {key!r}" if groups else "the table"
        for col in xs:
            if train[col].nunique() < 2:
                raise FitError(f"{where}: column {col!r} is constant; nothing to fit against")
        usable = [n for n in names if len(train) >= LAWS[n].n_params + 1]
        if not usable:
            need = min(LAWS[n].n_params for n in names) + 1
            held = f" after holding out {len(test)}" if len(test) else ""
            raise FitError(f"{where} has {len(train)} point(s) to fit{held}; law {law!r} needs "
                           f"at least {need} (parameters + 1)")
        group = dict(zip(groups, rows[groups].iloc[0].tolist(), strict=True)) if groups else {}
        work.append((key, group, train, test, usable))
    settings = {"xs": xs, "y": y, "auto": law == "auto", "delta": delta,
                "bootstrap": bootstrap, "seed": seed, "ci": ci, "target": target,
                "budgets": list(budgets or []), "k": k}
    if workers > 1 and len(work) > 1:
        from joblib import Parallel, delayed  # only here: scalinglab-fit starts without it

        fits = Parallel(n_jobs=workers)(delayed(_fit_group)(*w, **settings) for w in work)
    else:
        fits = [_fit_group(*w, **settings) for w in work]
    return FitReport(fits, data, ci)


def scored_on_test(table: pd.DataFrame, y: str) -> str | None:
    """test_loss for val_loss (test_acc for val_acc) when the runs measured one."""
    test = "test_" + y.removeprefix("val_")
    return test if (y.startswith("val_") and test in table.columns
                    and table[test].notna().any()) else None


def on_test_split(report: FitReport, delta: float = 1e-3) -> FitReport | None:
    """Each group's law refitted, on the same rows, to the test split's column (test_loss
    beside val_loss), so the test split is shown and chooses nothing (not the law, not the
    rows). None when the runs measured no test split, or no group can be fitted on it."""
    data = report.data
    y = scored_on_test(data, report.fits[0].y) if report.fits else None
    if y is None:
        return None
    values = pd.to_numeric(data[y], errors="coerce")
    missing = int((~(values > 0)).sum())
    if missing:
        warnings.warn(f"{y}: {missing} row(s) without a positive value are left out of its "
                      "fit", stacklevel=2)
    data = data.assign(**{y: values})[values > 0]
    fits = []
    for f in report.fits:
        rows = data[data["_group"] == f.label]
        train, test = rows[~rows["_holdout"]], rows[rows["_holdout"]]
        if len(train) < LAWS[f.law].n_params + 1 or any(train[c].nunique() < 2 for c in f.x):
            continue
        other, _ = _fit_one(LAWS[f.law], train, test, f.x, y, delta)
        other.group, other.label = f.group, f.label
        fits.append(other)
    return FitReport(fits, data, report.ci) if fits else None
