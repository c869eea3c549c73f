"""`scalinglab-report SOURCE [--out DIR]`: one self-contained HTML page, with its plots as image
files beside it, answering a scaling study's questions:

- performance vs size: loss and accuracy vs parameters, with the fitted law (and the joint law
  L(N, D) when the sweep has several training-set sizes);
- generalisation vs size: the train-val gap vs parameters, at each training-set size;
- resources vs size: wall time, peak memory, parameter bytes and FLOPs vs parameters, each with
  its fitted power law y = c N^k;
- the compute frontier, when the runs share FLOP budgets: IsoFLOP curves, N_opt and D_opt;
- the stopping rule: the smallest size predicted to reach a target loss or accuracy, with its
  interval, and the predicted cost to train it.

A table tool, like the fit: no torch, no Lightning.
"""

import argparse
import contextlib
import html
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from scalinglab.fit import FitError, fit  # noqa: E402
from scalinglab.fit.frontier import compute_frontier  # noqa: E402
from scalinglab.fit.plots import plot_fits, plot_frontier, save_figure  # noqa: E402
from scalinglab.fit.tuned import best_over, lr_scaling, scored_on_test  # noqa: E402
from scalinglab.launch.grow import GROW_NAME, Target  # noqa: E402
from scalinglab.records import (  # noqa: E402
    SourceError,
    atomic_write,
    collect_curves,
    load_table,
    read_record,
)

RESOURCES = {"time_s": "wall time (s)", "peak_mem_bytes": "peak memory (bytes)",
             "param_bytes": "parameter bytes", "train_flops": "training FLOPs"}


@dataclass
class PowerFit:
    """y = c N^k, fitted by least squares in log-log space."""

    k: float
    k_stderr: float
    c: float
    n: int

    def __call__(self, n_params: float) -> float:
        return self.c * n_params**self.k


def power_fit(x: pd.Series, y: pd.Series) -> PowerFit | None:
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or x[ok].nunique() < 2:
        return None
    r = stats.linregress(np.log(x[ok].astype(float)), np.log(y[ok].astype(float)))
    return PowerFit(float(r.slope), float(r.stderr), float(math.exp(r.intercept)), int(ok.sum()))


def _groups(table: pd.DataFrame) -> list[str]:
    """Fit separately per family and, when it varies, per training-set size."""
    return [c for c in ("family", "train_size") if c in table and table[c].nunique() > 1] or \
        [c for c in ("family",) if c in table]


def _label(keys: list[str], values) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float | np.floating) else str(v)


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _lines_plot(table: pd.DataFrame, keys: list[str], y: str, ylabel: str, path: Path,
                fits: dict | None = None, logy: bool = True) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for i, (value, rows) in enumerate(table.groupby(keys) if keys else [((), table)]):
        rows = rows.sort_values("params")
        ax.plot(rows["params"], rows[y], "o", color=f"C{i}", label=_label(keys, value), ms=4)
        f = (fits or {}).get(value)
        if f is not None:
            xs = np.geomspace(rows["params"].min(), rows["params"].max(), 50)
            ax.plot(xs, f(xs), color=f"C{i}", lw=1, label=f"  N^{f.k:.2f}")
    ax.set(xscale="log", yscale="log" if logy else "linear", xlabel="params", ylabel=ylabel)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    save_figure(fig, path, (path.suffix,), dpi=120)
    return f'<img src="{path.name}" alt="{html.escape(ylabel)} vs params">'


def performance(table: pd.DataFrame, keys: list[str], out: Path, y: str) -> str:
    parts = ["<h2>Performance vs size</h2>"]
    try:
        report = fit(table, x="params", y=y, law="power_offset", group_by=keys or None)
        plot_fits(report, out / "performance_loss", title=f"{y} vs params")
        parts.append(f'<img src="performance_loss.png" alt="{y} vs params">')
        ordered = sorted(report.fits, key=lambda f: tuple(f.group.values()))
        parts.append(_table(["group", "law", "alpha", "E", "rmse (log)"],
                            [[_label(keys, tuple(f.group.values())), f.law,
                              f.params.get("alpha"), f.params.get("E"), f.rmse_log_fit]
                             for f in ordered]))
        parts.append(f"<p>{y} = E + A·N<sup>−alpha</sup>: alpha is how fast the loss falls "
                     "with size; E is the loss no size gets below.</p>")
    except FitError as e:
        parts.append(f"<p>No law fitted: {html.escape(str(e))}</p>")
    if "val_acc" in table:
        parts.append(_lines_plot(table, keys, "val_acc", "val_acc", out / "performance_acc.png",
                                 logy=False))
    if "train_size" in table and table["train_size"].nunique() > 1 and "examples_seen" in table:
        parts.append(joint(table, out, y))
    return "\n".join(parts)


def joint(table: pd.DataFrame, out: Path, y: str) -> str:
    keys = [c for c in ("family",) if c in table and table[c].nunique() > 1]
    try:
        report = fit(table, x="params,examples_seen", y=y, law="chinchilla",
                     group_by=keys or None)
    except FitError as e:
        return f"<h3>Joint law L(N, D)</h3><p>Not fitted: {html.escape(str(e))}</p>"
    rows = [[f.label, f.params["alpha"], f.params["beta"], f.params["E"], f.derived.get("a"),
             f.derived.get("b"), f.rmse_log_fit] for f in report.fits]
    return ("<h3>Joint law L(N, D) = E + A/N<sup>alpha</sup> + B/D<sup>beta</sup></h3>"
            + _table(["group", "alpha", "beta", "E", "a (N_opt ∝ C^a)", "b (D_opt ∝ C^b)",
                      "rmse (log)"], rows)
            + "<p>D is examples seen. With a compute budget C, the loss-optimal model grows as "
              "C<sup>a</sup> and its data as C<sup>b</sup> (<code>scalinglab-fit --law "
              "chinchilla --budget C</code> gives N_opt and D_opt).</p>")


def frontier(table: pd.DataFrame, out: Path, y: str, bootstrap: int,
             curves: pd.DataFrame | None = None) -> str:
    """The compute frontier, when the runs share FLOP budgets (experiment=isoflop), with
    Approach 1 over the jobs' learning curves when there are `curves`."""
    if "train_flops" not in table or table["train_flops"].notna().sum() < 3:
        return ""
    front = compute_frontier(table, y=y, bootstrap=bootstrap, curves=curves)
    if not front.isoflops:
        return ""
    plot_frontier(front, table, out / "frontier", y=y, curves=curves)
    rows = [[b["C"], b["N_opt"], b.get("D_opt"), b["loss_opt"],
             "no: at an edge of its sizes" if b["at_edge"] else "yes"] for b in front.isoflops]

    def with_ci(value, ci) -> str:
        return _fmt(value) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")

    a = with_ci(front.isoflop_exponent, front.isoflop_exponent_ci)
    b = with_ci(front.isoflop_data_exponent, front.isoflop_data_exponent_ci)

    return ("<h2>The compute frontier</h2>"
            '<img src="frontier.png" alt="IsoFLOP curves and the compute-optimal size">'
            + _table(["budget C (FLOPs)", "N_opt", "D_opt (examples)", "loss at N_opt",
                      "bracketed"], rows)
            + f"<p>IsoFLOP profiles (Approach 2): N_opt ∝ C<sup>a</sup>, a = {html.escape(a)}; "
              f"D_opt ∝ C<sup>b</sup>, b = {html.escape(b)}, over the {front.n_bracketed} "
              f"bracketed budget(s), with {bootstrap} resamples of each budget's runs. A budget "
              "whose minimum sits at an edge of its sizes is left out. "
              f"{html.escape(front.note)}</p>" + _curve_envelope(front.curves))


def _curve_envelope(curves: dict | None) -> str:
    if not curves:
        return ""
    return (f"<p>Approach 1 over the learning curves ({curves['n_points']} points of "
            f"{curves['n_runs']} runs): N ∝ C<sup>{_fmt(curves['a'])}</sup> and D ∝ "
            f"C<sup>{_fmt(curves['b'])}</sup> along their lowest-loss envelope, "
            f"{curves['n_before_end']} of whose {len(curves['envelope'])} points are before "
            f"their run's schedule ended. {html.escape(curves['note'])}</p>")


LR = "module.lr"


def best_lr(table: pd.DataFrame, keys: list[str], out: Path, y: str) -> str:
    """When the sweep varied the learning rate: y vs LR per size, the best LR per size with
    lr_opt ~ N^-k, a warning for an optimum at the grid's edge, and the law on the tuned
    envelope."""
    if LR not in table or table[LR].nunique() < 2:
        return ""
    best, choices, varying = best_over(table, [LR], ["params"], y, keys)
    groups = [*keys, *varying]
    scaling = lr_scaling(choices, LR, "params", groups)
    panels = list(table.groupby(varying, dropna=False)) if varying else [((), table)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False,
                             sharey=True, constrained_layout=True)
    for ax, (value, rows) in zip(axes[0], panels, strict=True):
        sizes = sorted(rows["params"].unique())
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
        for color, n in zip(colors, sizes, strict=True):
            curve = rows[rows["params"] == n].groupby(LR)[y].mean()
            ax.plot(curve.index, curve.values, "o-", ms=3, color=color, label=f"{n:,.0f}")
            ax.plot([curve.idxmin()], [curve.min()], "*", ms=12, color=color,
                    markeredgecolor="k")
        title = _label(varying, value) if varying else "all runs"
        ax.set(xscale="log", yscale="log", xlabel=LR, title=title)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, title="params")
    axes[0][0].set_ylabel(y)
    save_figure(fig, out / "best_lr.png", (".png",), dpi=120)
    test = scored_on_test(best, y)  # the column best_over scored its winners by
    rows = [[_label(groups, tuple(c[g] for g in groups)), c["params"], c[LR],
             "yes: widen the sweep" if c["at_edge"][LR] else "no", *([c[test]] if test else [])]
            for c in choices]
    fits = "".join(
        f"<li>{html.escape(_label(groups, tuple(f['group'].values())))}: lr_opt ∝ "
        f"N<sup>−k</sup>, k = " + (f"{f['k']:.3g} [{f['ci'][0]:.3g}, {f['ci'][1]:.3g}]"
                                   if f["k"] is not None else "n/a")
        + f" over {f['n']} bracketed size(s)</li>" for f in scaling)
    edges = sum(c["at_edge"][LR] for c in choices)
    warning = (f"<p><b>Warning:</b> {edges} size(s) chose an LR at an edge of the swept grid: "
               "their optimum is not bracketed.</p>" if edges else "")
    if not test and y.startswith("val_"):
        warning += (f"<p><b>Warning:</b> the runs validated on the dataset's held-out split, "
                    f"so it both chose each size's LR (by {y}) and scores it. "
                    "<code>data.val_from_train=N</code> chooses on N training examples and "
                    "keeps the split for <code>test_*</code>.</p>")
    try:
        tuned = fit(best, x="params", y=y, law="power_offset", group_by=groups or None)
        law = _table(["group", "alpha on the tuned envelope", "E"],
                     [[f.label, f.params.get("alpha"), f.params.get("E")] for f in tuned.fits])
    except FitError as e:
        law = f"<p>No law on the tuned envelope: {html.escape(str(e))}</p>"
    return ("<h2>Best LR vs size</h2>"
            '<img src="best_lr.png" alt="loss vs learning rate per size">'
            + warning + f"<ul>{fits}</ul>"
            + _table(["group", "params", "best lr", "at the grid's edge",
                      *([f"{test} (not chosen by)"] if test else [])], rows) + law
            + "<p>The tuned envelope keeps each size's best LR (seeds averaged): "
              "<code>scalinglab-fit SWEEP --best-over module.lr</code>.</p>")


def generalisation(table: pd.DataFrame, keys: list[str], out: Path) -> str:
    if not {"train_loss", "val_loss"} <= set(table):
        return "<h2>Generalisation vs size</h2><p>The runs have no train_loss.</p>"
    table = table.assign(gap=table["val_loss"] - table["train_loss"])
    rows = []
    for value, g in (table.groupby(keys) if keys else [((), table)]):
        g = g.groupby("params")["gap"].mean().sort_index()
        trend = "grows" if g.iloc[-1] > g.iloc[0] else "shrinks"
        rows.append([_label(keys, value), g.iloc[0], g.iloc[-1], f"{trend} with size"])
    img = _lines_plot(table, keys, "gap", "val_loss − train_loss", out / "generalisation.png",
                      logy=False)
    return ("<h2>Generalisation vs size</h2>" + img
            + _table(["group", "gap at the smallest size", "gap at the largest size", ""], rows)
            + "<p>Both losses are measured in eval mode on as many training as validation "
              "examples. A gap that grows with size at fixed data is overfitting that more "
              "data or regularisation would pay for.</p>")


def resources(table: pd.DataFrame, keys: list[str], out: Path) -> tuple[str, dict]:
    parts, fits_by_column, rows = ["<h2>Resources vs size</h2>"], {}, []
    for column, name in RESOURCES.items():
        if column not in table or table[column].notna().sum() < 3:
            continue
        fits = {value: power_fit(g["params"], g[column])
                for value, g in (table.groupby(keys) if keys else [((), table)])}
        fits_by_column[column] = fits
        parts.append(_lines_plot(table, keys, column, name, out / f"resources_{column}.png",
                                 fits))
        rows += [[name, _label(keys, v), f.k, f.k_stderr, f.n]
                 for v, f in fits.items() if f is not None]
    parts.append(_table(["resource", "group", "k (∝ N^k)", "± stderr", "runs"], rows))
    parts.append("<p>Peak memory is the process's peak RSS on CPU (CUDA's peak allocated on a "
                 "GPU); for small models on CPU it is mostly the runtime itself, so k is near "
                 "0 there. Wall time includes validation.</p>")
    return "\n".join(parts), fits_by_column


def stopping_rule(table: pd.DataFrame, y: str, target_loss: float | None,
                  target_acc: float | None, bootstrap: int, costs: dict,
                  cost_keys: list[str]) -> str:
    """The smallest size predicted to reach each target, at the largest training-set size."""
    if "train_size" in table and table["train_size"].notna().any():
        table = table[table["train_size"] == table["train_size"].max()]
    keys = [c for c in ("family",) if c in table and table[c].nunique() > 1]
    chosen = ""
    if target_loss is None and target_acc is None:
        target_loss = 0.95 * float(table[y].min())
        chosen = f" (the default: 5% below the best {y} measured, {table[y].min():.4g})"
    questions = []
    if target_loss is not None:
        questions.append((y, target_loss, f"{y} ≤ {target_loss:.4g}{chosen}"))
    if target_acc is not None and "val_acc" in table:
        table = table.assign(val_err=1 - table["val_acc"])
        questions.append(("val_err", 1 - target_acc, f"val_acc ≥ {target_acc:.4g}"))
    rows, largest = [], float(table["params"].max())
    for column, target, text in questions:
        try:
            report = fit(table, x="params", y=column, law="power_offset", group_by=keys or None,
                         target=target, bootstrap=bootstrap)
        except FitError as e:
            rows.append([text, "–", f"not fitted: {e}", "–", "–", "–"])
            continue
        for f in report.fits:
            n = f.derived.get("target_x")
            ci = (f.ci or {}).get("target_x") or [None, None]
            # the resource laws of this group (keyed like resources(): family, train_size)
            key = tuple(f.group.get(k, table[k].iloc[0]) for k in cost_keys)
            predicted = [_fmt(law(n)) if n and (law := costs.get(c, {}).get(key)) else "–"
                         for c in ("time_s", "train_flops")]
            needed = _fmt(n) if n else "unreachable (below E)"
            if n and n > 10 * largest:
                needed += " (over 10x the largest run: a long extrapolation)"
            # the interval covers the resamples that reach the target; say how many do
            frac = f.derived.get("target_reachable_frac")
            interval = f"{_fmt(ci[0])} – {_fmt(ci[1])}" if n else "–"
            if frac is not None and frac < 1:
                interval += f" ({frac:.0%} of resamples reach it)"
            rows.append([text, _label(cost_keys, key), needed, interval, *predicted])
    return ("<h2>The stopping rule</h2>"
            "<p>“Keep increasing size until the target is met”, answered from the fitted "
            "law at the largest training-set size: the smallest size predicted to reach each "
            f"target, with its 95% bootstrap interval ({bootstrap} resamples of whole "
            "sizes), and the cost to train it from the resource laws above.</p>"
            + _table(["target", "group", "params needed", "interval", "predicted time (s)",
                      "predicted training FLOPs"], rows))


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; color: #222 }}
table {{ border-collapse: collapse; margin: 0.8rem 0 }}
td, th {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; font-size: 0.9rem }}
img {{ max-width: 100%; display: block; margin: 0.5rem 0 }}
</style></head><body>
<h1>{title}</h1>
<p>{summary}</p>
{sections}
</body></html>
"""


def growing(doc: dict | None, out: Path) -> str:
    """A grow search (hydra/sweeper=grow, its grow.json): the rounds on the metric-vs-size
    plot, the last fit, and each round's decision."""
    if not doc or not doc.get("rounds"):
        return ""
    target = Target.parse(doc["target"])
    column = target.column
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for rnd in doc["rounds"]:
        done = [j for j in rnd["jobs"] if j.get("params") and j.get("value") is not None]
        ax.plot([j["params"] for j in done], [j["value"] for j in done], "o", ms=6,
                color=f"C{rnd['round'] - 1}", label=f"round {rnd['round']}")
    fitted = [r["fit"] for r in doc["rounds"] if r.get("fit")]
    trained = [j["params"] for r in doc["rounds"] for j in r["jobs"] if j.get("params")]
    if fitted and trained:
        p = fitted[-1]["params"]
        xs = np.geomspace(min(trained), max(trained) * 2, 60)
        err = p.get("E", 0.0) + p["A"] * xs ** -p["alpha"]
        ax.plot(xs, target.error(err), "k--", lw=1,
                label=f"last fit ({fitted[-1]['law']})")
    ax.axhline(target.value, color="C3", lw=1, ls=":", label=f"target {doc['target']}")
    if doc.get("answer"):
        ax.plot([doc["answer"]["params"]], [doc["answer"][column]], "*", ms=16, color="gold",
                markeredgecolor="k", label="answer", zorder=4)
    ax.set(xscale="log", xlabel="params", ylabel=column, title=f"growing to {doc['target']}")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    save_figure(fig, out / "grow.png", (".png",), dpi=120)
    rows = []
    for rnd in doc["rounds"]:
        pred = rnd.get("prediction") or {}
        interval = pred.get("interval")
        rows.append([rnd["round"], ", ".join(f"{j['params']:,}" if j.get("params") else
                                             j["status"] for j in rnd["jobs"]),
                     ", ".join(_fmt(j.get("value")) for j in rnd["jobs"]),
                     "–" if not pred.get("params") else f"{pred['params']:,.0f}" + (
                         f" [{interval[0]:,.0f}, {interval[1]:,.0f}]" if interval else ""),
                     f"{rnd['decision']}: {rnd['why']}"])
    answer = doc.get("answer")
    found = (f"the answer is {answer['params']:,} parameters ({column} = "
             f"{answer[column]:.4g})" if answer else "no size met the target")
    return ("<h2>Growing to the target</h2>"
            f"<p>Search status <b>{html.escape(doc['status'])}</b>: {html.escape(found)}. "
            f"{doc['n_jobs']} jobs, {doc['train_flops']:.3g} training FLOPs, "
            f"{doc['time_s']:.1f} s of training. {html.escape(doc.get('why', ''))}</p>"
            '<img src="grow.png" alt="the rounds of the search">'
            + _table(["round", "params", column, "predicted N [interval]", "decision"], rows))


def build(table: pd.DataFrame, out: Path, title: str, y: str = "val_loss",
          target_loss: float | None = None, target_acc: float | None = None,
          bootstrap: int = 200, curves: pd.DataFrame | None = None,
          grow: dict | None = None) -> Path:
    """Write `report.html` and its images into `out`; return the page's path. `curves`: the
    jobs' learning curves (records.collect_curves), for the frontier's Approach 1; `grow`:
    a grow search's grow.json."""
    if "status" in table:
        table = table[table["status"] == "completed"]
    if curves is not None:
        curves = curves[curves["status"] == "completed"]
    for column in ("params", y):
        if column not in table:
            raise SourceError(f"the runs have no {column!r} column; have {sorted(table)}")
    if len(table) < 3:
        raise SourceError(f"{len(table)} completed run(s); a report needs at least 3")
    out.mkdir(parents=True, exist_ok=True)
    keys = _groups(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        costs_html, costs = resources(table, keys, out)
        sections = [growing(grow, out), performance(table, keys, out, y),
                    best_lr(table, keys, out, y),
                    frontier(table, out, y, bootstrap, curves),
                    generalisation(table, keys, out), costs_html,
                    stopping_rule(table, y, target_loss, target_acc, bootstrap, costs, keys)]
    sizes = f"{table['params'].nunique()} sizes ({table['params'].min():,.0f} to " \
            f"{table['params'].max():,.0f} params)"
    summary = f"{len(table)} completed runs, {sizes}; grouped by {', '.join(keys) or 'nothing'}."
    page = PAGE.format(title=html.escape(title), summary=html.escape(summary),
                       sections="\n".join(sections))
    return atomic_write(out / "report.html", page)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scalinglab-report", description=__doc__.split("\n")[0])
    p.add_argument("source", help="a sweep directory, a table of runs, or wandb:ENTITY/PROJECT")
    p.add_argument("--out", default=None, help="output directory (default: SOURCE/report)")
    p.add_argument("--y", default="val_loss", help="the loss column (default: val_loss)")
    p.add_argument("--target-loss", type=float, default=None)
    p.add_argument("--target-acc", type=float, default=None)
    p.add_argument("--bootstrap", type=int, default=200, help="resamples for the intervals")
    args = p.parse_args(argv)
    try:
        table = load_table(args.source)
        default = Path(args.source) / "report" if Path(args.source).is_dir() else None
        out = Path(args.out) if args.out else default
        if out is None:
            raise SourceError("--out is needed when SOURCE is not a sweep directory")
        curves = grow = None
        if default is not None:  # a sweep directory: its jobs' learning curves, if any
            with contextlib.suppress(SourceError):
                curves = collect_curves(args.source)
            if (Path(args.source) / GROW_NAME).exists():  # a grow search
                grow = read_record(Path(args.source) / GROW_NAME)
        path = build(table, out, f"Scaling report: {args.source}", args.y, args.target_loss,
                     args.target_acc, args.bootstrap, curves, grow)
    except (SourceError, FitError) as e:
        print(f"scalinglab-report: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"report: {path}")


if __name__ == "__main__":
    main()
