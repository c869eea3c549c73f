"""The report's sections as plain data: each function takes the runs table and returns what its
section says (fitted numbers, tables as pandas DataFrames, the objects its figure is drawn
from), or None when the study has nothing for it. Tested on the numbers; figures.py draws them
and page.html.j2 renders them.

- performance vs size: loss and accuracy vs parameters, with the fitted law (and the joint law
  L(N, D) when the sweep has several training-set sizes);
- the best LR per size, when the sweep varied the learning rate;
- the compute frontier, when the runs share FLOP budgets: IsoFLOP curves, N_opt and D_opt;
- generalisation vs size: the train-val gap vs parameters;
- resources vs size: wall time, peak memory, parameter bytes and FLOPs vs parameters, each with
  its fitted power law y = c N^k;
- the stopping rule: the smallest size predicted to reach a target loss or accuracy, with its
  interval, and the predicted cost to train it;
- a grow search's rounds.
"""

import pandas as pd

from scalinglab.fit import FitError, default_groups, fit, on_test_split, scored_on_test
from scalinglab.fit.frontier import LOCAL_SIZES, UNSTABLE_FACTOR, compute_frontier, minimum_status
from scalinglab.fit.power import power_fit
from scalinglab.fit.tuned import best_over, lr_scaling
from scalinglab.grow import Target

RESOURCES = {"time_s": "wall time (s)", "peak_mem_bytes": "peak memory (bytes)",
             "state_bytes": "training state (bytes)", "param_bytes": "parameter bytes",
             "train_flops": "training FLOPs"}
LR = "module.lr"
ESTIMATOR_TEXT = {  # how each IsoFLOP estimator finds a budget's minimum, for the page
    "local": f"the vertex of a parabola in log N over the {LOCAL_SIZES} sizes around its lowest "
             "mean loss",
    "parabola": "the vertex of a parabola in log N over all its sizes",
    "spline": "the lowest point of a cubic spline of log loss in log N, inside its sizes"}


def label(keys: list[str], values) -> str:
    """A group's name, e.g. 'family=mlp, train_size=4000'."""
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"


def by_group(table: pd.DataFrame, keys: list[str]):
    """(group values, rows) per group, in order; one group of everything without keys."""
    return table.groupby(keys) if keys else [((), table)]


def performance(table: pd.DataFrame, keys: list[str], y: str, bootstrap: int = 0,
                ci: float = 0.95) -> dict:
    """y = E + A N^-alpha per group, with alpha's bootstrap interval at level `ci`."""
    try:
        report = fit(table, x="params", y=y, law="power_offset", group_by=keys or None,
                     bootstrap=bootstrap, ci=ci)
    except FitError as e:
        return {"y": y, "report": None, "fits": None, "error": str(e)}
    # the test split beside validation: the same law and rows, chosen by nothing
    test = on_test_split(report)
    test_y = test.fits[0].y if test else None
    rows = [(f, y) for f in report.fits] + [(f, test_y) for f in (test.fits if test else [])]
    rows.sort(key=lambda fy: tuple(fy[0].group.values()))
    fits = pd.DataFrame([{"group": label(keys, tuple(f.group.values())), "on": on, "law": f.law,
                          "alpha": f.params["alpha"],
                          "alpha low": ((f.ci or {}).get("alpha") or [None])[0],
                          "alpha high": ((f.ci or {}).get("alpha") or [None, None])[1],
                          "E": f.params["E"], "A": f.params["A"], "rmse (log)": f.rmse_log_fit}
                         for f, on in rows])
    return {"y": y, "report": report, "fits": fits, "error": None, "ci": ci,
            "bootstrap": bootstrap, "test_y": test_y}


def data_axis(table: pd.DataFrame) -> str:
    """D: tokens for runs that have them (a language model's), else examples."""
    if "tokens_seen" in table and table["tokens_seen"].notna().all():
        return "tokens_seen"
    return "examples_seen"


def joint(table: pd.DataFrame, y: str) -> dict | None:
    """L(N, D) = E + A/N^alpha + B/D^beta, when the runs have several training-set sizes."""
    d = data_axis(table)
    if not {"train_size", d} <= set(table) or table["train_size"].nunique() < 2:
        return None
    keys = default_groups(table, ["params", d])
    try:
        report = fit(table, x=f"params,{d}", y=y, law="chinchilla", group_by=keys or None)
    except FitError as e:
        return {"fits": None, "error": str(e)}
    fits = pd.DataFrame([{"group": f.label, "alpha": f.params["alpha"], "beta": f.params["beta"],
                          "E": f.params["E"], "a (N_opt ∝ C^a)": f.derived.get("a"),
                          "b (D_opt ∝ C^b)": f.derived.get("b"), "rmse (log)": f.rmse_log_fit}
                         for f in report.fits])
    return {"fits": fits, "error": None}


def frontier(table: pd.DataFrame, y: str, bootstrap: int, ci: float,
             curves: pd.DataFrame | None = None) -> dict | None:
    """The compute frontier, when the runs share FLOP budgets (experiment=isoflop), with
    Approach 1 over the jobs' learning curves when there are `curves`."""
    if "train_flops" not in table or table["train_flops"].notna().sum() < 3:
        return None
    d = data_axis(table)
    front = compute_frontier(table, y=y, examples=d, bootstrap=bootstrap, ci=ci, curves=curves)
    if not front.isoflops:
        return None
    unit = "tokens" if d == "tokens_seen" else "examples"
    budgets = pd.DataFrame([{"budget C (FLOPs)": b["C"], "N_opt": b["N_opt"],
                             f"D_opt ({unit})": b.get("D_opt"), "loss at N_opt": b["loss_opt"],
                             "counted": minimum_status(b)} for b in front.isoflops])
    return {"front": front, "budgets": budgets, "a": front.isoflop_exponent,
            "estimator_text": ESTIMATOR_TEXT[front.estimator],
            "unstable_factor": f"{UNSTABLE_FACTOR:g}",
            "a_ci": front.isoflop_exponent_ci, "b": front.isoflop_data_exponent,
            "b_ci": front.isoflop_data_exponent_ci, "bootstrap": bootstrap,
            "curves": front.curves}


def best_lr(table: pd.DataFrame, keys: list[str], y: str) -> dict | None:
    """When the sweep varied the learning rate: the best LR per size, lr_opt ~ N^-k, the sizes
    whose optimum sits at the grid's edge, and the law on the tuned envelope."""
    if LR not in table or table[LR].nunique() < 2:
        return None
    best, choices, varying = best_over(table, [LR], ["params"], y, keys)
    groups = [*keys, *varying]
    test = scored_on_test(best, y)  # the column best_over scored its winners by
    rows = pd.DataFrame([{"group": label(groups, tuple(c[g] for g in groups)),
                          "params": c["params"], "best lr": c[LR],
                          "at the grid's edge": "yes: widen the sweep" if c["at_edge"][LR]
                          else "no", **({f"{test} (not chosen by)": c[test]} if test else {})}
                         for c in choices])
    scaling = [{**s, "group": label(groups, tuple(s["group"].values()))}
               for s in lr_scaling(choices, LR, "params", groups)]
    try:
        tuned = fit(best, x="params", y=y, law="power_offset", group_by=groups or None)
        envelope = pd.DataFrame([{"group": f.label, "alpha on the tuned envelope":
                                  f.params["alpha"], "E": f.params["E"]} for f in tuned.fits])
        error = None
    except FitError as e:
        envelope, error = None, str(e)
    return {"y": y, "varying": varying, "rows": rows, "scaling": scaling,
            "edges": sum(c["at_edge"][LR] for c in choices), "test": test,
            "chose_on_test": test is None and y.startswith("val_"),
            "envelope": envelope, "error": error}


def generalisation(table: pd.DataFrame, keys: list[str]) -> dict:
    """The train-val gap at the smallest and the largest size, per group."""
    if not {"train_loss", "val_loss"} <= set(table):
        return {"rows": None, "table": None}
    table = table.assign(gap=table["val_loss"] - table["train_loss"])
    rows = []
    for value, g in by_group(table, keys):
        g = g.groupby("params")["gap"].mean().sort_index()
        trend = "grows" if g.iloc[-1] > g.iloc[0] else "shrinks"
        rows.append({"group": label(keys, value), "gap at the smallest size": g.iloc[0],
                     "gap at the largest size": g.iloc[-1], "": f"{trend} with size"})
    return {"rows": pd.DataFrame(rows), "table": table}


def resources(table: pd.DataFrame, keys: list[str]) -> dict:
    """Each resource against size, y = c N^k per group (fit/power.py)."""
    fits, rows = {}, []
    for column, name in RESOURCES.items():
        if column not in table or table[column].notna().sum() < 3:
            continue
        fits[column] = {value: power_fit(g["params"], g[column])
                        for value, g in by_group(table, keys)}
        rows += [{"resource": name, "group": label(keys, v), "k (∝ N^k)": f.k,
                  "± stderr": f.k_stderr, "runs": f.n}
                 for v, f in fits[column].items() if f is not None]
    return {"fits": fits, "rows": pd.DataFrame(rows)}


def stopping_rule(table: pd.DataFrame, y: str, target_loss: float | None,
                  target_acc: float | None, bootstrap: int, ci: float, costs: dict,
                  cost_keys: list[str]) -> dict:
    """The smallest size predicted to reach each target, at the largest training-set size,
    and what training it would cost (the resource laws, `costs`, keyed by `cost_keys`)."""
    if "train_size" in table and table["train_size"].notna().any():
        table = table[table["train_size"] == table["train_size"].max()]
    keys = default_groups(table, "params")
    default = None
    if target_loss is None and target_acc is None:
        target_loss = 0.95 * float(table[y].min())
        default = f"5% below the best {y} measured, {table[y].min():.4g}"
    questions = []
    if target_loss is not None:
        questions.append((y, target_loss, f"{y} ≤ {target_loss:.4g}"))
    if target_acc is not None and "val_acc" in table and table["val_acc"].notna().any():
        table = table.assign(val_err=1 - table["val_acc"])
        questions.append(("val_err", 1 - target_acc, f"val_acc ≥ {target_acc:.4g}"))
    rows, largest = [], float(table["params"].max())
    for column, target, text in questions:
        try:
            report = fit(table, x="params", y=column, law="power_offset", group_by=keys or None,
                         target=target, bootstrap=bootstrap, ci=ci)
        except FitError as e:
            rows.append({"target": text, "group": None, "params needed": None,
                         "note": f"not fitted: {e}"})
            continue
        for f in report.fits:
            n = f.derived.get("target_x")
            interval = (f.ci or {}).get("target_x") or [None, None]
            # the resource laws of this group (keyed like resources(): family, train_size)
            key = tuple(f.group.get(k, table[k].iloc[0]) for k in cost_keys)
            predicted = {c: (law(n).item() if n and (law := costs.get(c, {}).get(key)) else None)
                         for c in ("time_s", "train_flops")}
            frac = f.derived.get("target_reachable_frac")
            notes = [] if n else ["unreachable: below the fitted E"]
            if n and n > 10 * largest:
                notes.append("over 10x the largest run: a long extrapolation")
            if n and frac is not None and frac < 1:
                notes.append(f"{frac:.0%} of resamples reach it")
            rows.append({"target": text, "group": label(cost_keys, key), "params needed": n,
                         "interval low": interval[0] if n else None,
                         "interval high": interval[1] if n else None,
                         "predicted time (s)": predicted["time_s"],
                         "predicted training FLOPs": predicted["train_flops"],
                         "note": "; ".join(notes)})
    return {"rows": pd.DataFrame(rows), "default": default, "bootstrap": bootstrap, "ci": ci}


def growing(doc: dict | None) -> dict | None:
    """A grow search (hydra/sweeper=grow, its grow.json): each round's sizes, values,
    prediction and decision, and the answer."""
    if not doc or not doc.get("rounds"):
        return None
    target = Target.parse(doc["target"])
    rounds = []
    for rnd in doc["rounds"]:
        pred = rnd.get("prediction") or {}
        interval = pred.get("interval") or [None, None]
        rounds.append({"round": rnd["round"],
                       "params": ", ".join(f"{j['params']:,}" if j.get("params") else
                                           j["status"] for j in rnd["jobs"]),
                       target.column: ", ".join("–" if j.get("value") is None else
                                                f"{j['value']:.3g}" for j in rnd["jobs"]),
                       "predicted N": pred.get("params"), "interval low": interval[0],
                       "interval high": interval[1],
                       "decision": f"{rnd['decision']}: {rnd['why']}"})
    return {"doc": doc, "target": target, "rounds": pd.DataFrame(rounds)}
