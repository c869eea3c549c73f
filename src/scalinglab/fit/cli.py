"""`scalinglab-fit SOURCE`: fit a scaling law to a sweep directory or a table of runs."""

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scalinglab import exits
from scalinglab.files import write_json
from scalinglab.fit import (
    FitError,
    FitReport,
    data_column,
    default_groups,
    fit,
    on_test_split,
    scored_on_test,
)
from scalinglab.fit.frontier import ESTIMATORS, compute_frontier, minimum_status
from scalinglab.fit.laws import LAWS
from scalinglab.fit.tuned import best_over, lr_scaling
from scalinglab.records.tables import SourceError, collect_curves, load_table


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scalinglab-fit", description=__doc__)
    p.add_argument("source",
                   help="a sweep directory (its run.json records) or a CSV/Parquet/JSONL file")
    p.add_argument("--x", default="params", help="x column(s), comma-separated (default: params)")
    p.add_argument("--y", default="val_loss", help="y column (default: val_loss)")
    p.add_argument("--law", default="power_offset", choices=[*sorted(LAWS), "auto"])
    p.add_argument("--group-by", default=None,
                   help="columns to fit separately (default: family when present, and "
                   "train_size when it varies and --x has no data column; '' for none)")
    p.add_argument("--holdout-largest", type=int, default=0, metavar="K",
                   help="hold out the K largest values of the first x column per group")
    p.add_argument("--holdout", default=None, metavar="EXPR",
                   help="hold out the rows this pandas query selects, e.g. 'params > 1e5'")
    p.add_argument("--delta", type=float, default=1e-3, help="Huber delta on log residuals")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="N resamples of whole configurations for percentile intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="fit the groups in N processes (the same results; for many groups, "
                   "--law auto or a long --bootstrap)")
    p.add_argument("--ci", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--target", type=float, default=None, metavar="LOSS",
                   help="predict the x (or, for chinchilla, the compute) that reaches this y")
    p.add_argument("--budget", type=_floats, default=None, metavar="C1,C2",
                   help="compute budgets for the chinchilla allocation table")
    p.add_argument("--flops-per-param", default="6", metavar="K|measured",
                   help="k in C = k N D (6 for dense layers); 'measured' takes the sweep's own")
    p.add_argument("--best-over", default=None, metavar="COL[,COL]",
                   help="fit the tuned envelope: per size (and every other swept setting), "
                   "the lowest y over these columns, e.g. module.lr; seeds averaged first")
    p.add_argument("--frontier", action="store_true",
                   help="also the compute frontier (envelope and IsoFLOP) from --compute")
    p.add_argument("--compute", default="train_flops", help="compute column for --frontier")
    p.add_argument("--isoflop-estimator", default="local", choices=ESTIMATORS,
                   help="each budget's minimum: a parabola over the 5 sizes around the lowest "
                   "mean loss (local, default), over all sizes (parabola), or a cubic spline of "
                   "log loss in log N (spline)")
    p.add_argument("--curves", default=None, metavar="PATH",
                   help="learning curves for --frontier's Approach 1 (a table from "
                   "scalinglab-export --curves, or a sweep directory); default: the source's "
                   "own curve.csv files, when it is a sweep directory")
    p.add_argument("--out", default=None, help="write fit.json and plots (PNG + SVG) here")
    p.add_argument("--wandb", default=None, metavar="PROJECT",
                   help="log the fit as a W&B run of job_type 'fit' in the study's group")
    p.add_argument("--entity", default=None, help="W&B entity for --wandb")
    p.add_argument("--group", default=None,
                   help="W&B group for --wandb (default: the sweep directory's name)")
    p.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    return p.parse_args(argv)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def print_report(report: FitReport, console: Console) -> None:
    """One table: a row per quantity, a column per group (with its interval when bootstrapped)."""
    first = report.fits[0]
    laws = sorted({f.law for f in report.fits})
    formulas = "; ".join(f"{law}: {LAWS[law].formula}" for law in laws)
    table = Table(title=f"{first.y} vs {', '.join(first.x)}  ({formulas})")
    table.add_column("quantity")
    for f in report.fits:
        table.add_column(f.label, justify="right")
    names = list(dict.fromkeys(n for f in report.fits for n in [*f.params, *f.derived]))
    for name in names:
        cells = []
        for f in report.fits:
            value = {**f.params, **f.derived}.get(name, "n/a")
            text = "unreachable" if name == "target_x" and value is None else (
                value if value == "n/a" else _fmt(value))
            interval = (f.ci or {}).get(name)
            if interval is not None:
                text += f" [{interval[0]:.4g}, {interval[1]:.4g}]"
            cells.append(text)
        table.add_row(name, *cells)
    for row, key in (("law", "law"), ("n_fit", "n_fit"), ("rmse_log_fit", "rmse_log_fit"),
                     ("n_holdout", "n_holdout"), ("rmse_log_holdout", "rmse_log_holdout"),
                     ("objective", "objective")):
        values = [getattr(f, key) for f in report.fits]
        table.add_row(row, *(v if isinstance(v, str) else _fmt(v) for v in values),
                      style="dim")
    console.print(table)
    for f in report.fits:
        if f.selection:
            console.print(f"{f.label}: law auto: {f.selection['reason']}")


def _interval(ci) -> str:
    return f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""


def print_frontier(front, console: Console) -> None:
    """Approach 1 in a line; Approach 2 as a table of budgets, then its exponents."""
    console.print(f"frontier (Approach 1): N ~ C^{_fmt(front.envelope_exponent)} along the "
                  f"lowest-loss envelope ({len(front.envelope)} runs)")
    if front.curves:
        c = front.curves
        console.print(f"frontier (Approach 1, learning curves): N ~ C^{_fmt(c['a'])}, D ~ "
                      f"C^{_fmt(c['b'])} along the lowest-loss envelope of {c['n_points']} "
                      f"points of {c['n_runs']} runs; {c['n_before_end']} of its "
                      f"{len(c['envelope'])} points are before their run's schedule ended. "
                      f"{c['note']}")
    if not front.isoflops:
        console.print("IsoFLOP (Approach 2): no budget with 3+ sizes and an interior minimum")
        return
    table = Table(title=f"IsoFLOP profiles (Approach 2): the minimum of each budget's loss in "
                  f"log N, by {front.estimator}")
    for col in ("C", "N_opt", "D_opt", "D_opt / N_opt", "loss_opt", "counted"):
        table.add_column(col, justify="right")
    for b in front.isoflops:
        ratio = b["D_opt"] / b["N_opt"] if b.get("D_opt") and b["N_opt"] else None
        table.add_row(_fmt(b["C"]), _fmt(b["N_opt"]), _fmt(b.get("D_opt")), _fmt(ratio),
                      _fmt(b["loss_opt"]), minimum_status(b))
    console.print(table)
    console.print(f"N_opt ~ C^a, a = {_fmt(front.isoflop_exponent)}"
                  f"{_interval(front.isoflop_exponent_ci)}; D_opt ~ C^b, b = "
                  f"{_fmt(front.isoflop_data_exponent)}{_interval(front.isoflop_data_exponent_ci)}"
                  f" (over the {front.n_bracketed} budget(s) counted). {front.note}")


def tune(args: argparse.Namespace, table, group_by: list[str]):
    """--best-over: the tuned envelope's rows, the fit's groups, and what was chosen."""
    over = [c.strip() for c in args.best_over.split(",") if c.strip()]
    if "status" in table.columns:
        table = table[table["status"] == "completed"]
    xs = [c.strip() for c in args.x.split(",")]
    best, choices, varying = best_over(table, over, xs, args.y, group_by)
    groups = [*group_by, *varying]
    numeric = pd.api.types.is_numeric_dtype(best[over[0]])
    doc = {"columns": over, "groups": groups, "choices": choices,
           "test": scored_on_test(best, args.y),  # the column best_over scored its winners by
           "scaling": lr_scaling(choices, over[0], xs[0], groups) if numeric else []}
    return best, groups, doc


def print_tuned(doc: dict, y: str, size: str, console: Console) -> None:
    """The chosen hyperparameters per size, the edges, and lr_opt ~ N^-k."""
    over, groups = doc["columns"], doc["groups"]
    scores = [y, *([doc["test"]] if doc["test"] else [])]
    table = Table(title=f"the tuned envelope: the lowest {y} over {', '.join(over)}")
    for col in (*groups, size, *over, *scores):
        table.add_column(col, justify="right")
    for c in doc["choices"]:
        marks = ["" if not c["at_edge"][o] else " (edge)" for o in over]
        table.add_row(*(str(c[g]) for g in groups), _fmt(c[size]),
                      *(f"{_fmt(c[o])}{m}" for o, m in zip(over, marks, strict=True)),
                      *(_fmt(c[s]) for s in scores))
    console.print(table)
    edges = [c for c in doc["choices"] if any(c["at_edge"].values())]
    if edges:
        console.print(f"[yellow]warning:[/] {len(edges)} size(s) chose a value at an edge of "
                      f"the swept grid: their optimum is not bracketed (widen the sweep)")
    for s in doc["scaling"]:
        where = ", ".join(f"{k}={v}" for k, v in s["group"].items()) or "all"
        k = "n/a (fewer than 3 bracketed sizes)" if s["k"] is None else escape(
            f"{s['k'] + 0.0:.3g} [{s['ci'][0] + 0.0:.3g}, {s['ci'][1] + 0.0:.3g}]")
        console.print(f"{where}: {over[0]}_opt ~ {size}^-k, k = {k} over {s['n']} size(s)")


def run(args: argparse.Namespace, table) -> tuple[FitReport, dict | None]:
    groups = (default_groups(table, args.x) if args.group_by is None else
              [c.strip() for c in args.group_by.split(",") if c.strip()])
    tuned = None
    if args.best_over:
        table, groups, tuned = tune(args, table, groups)
    k = args.flops_per_param
    if k != "measured":
        try:
            k = float(k)
        except ValueError:
            raise FitError(f"--flops-per-param must be a number or 'measured', got {k!r}") from None
    return fit(table, x=args.x, y=args.y, law=args.law, group_by=groups or None,
               holdout_largest=args.holdout_largest, holdout=args.holdout, delta=args.delta,
               bootstrap=args.bootstrap, seed=args.seed, ci=args.ci, target=args.target,
               budgets=args.budget, flops_per_param=k, workers=args.workers), tuned


def _frontier(args, table):
    xs = args.x.split(",")
    missing = [c for c in (args.compute, *xs[:2], args.y) if c not in table.columns]
    if missing:
        raise FitError(f"--frontier needs column(s) {missing}")
    rows = table[table["status"] == "completed"] if "status" in table.columns else table
    curves = _curves(args)
    front = compute_frontier(rows, args.compute, xs[0], args.y, examples=data_column(xs),
                             bootstrap=args.bootstrap, seed=args.seed, ci=args.ci,
                             curves=curves, estimator=args.isoflop_estimator)
    return front, rows, curves


def _curves(args):
    """The learning curves Approach 1 draws on: --curves, else the source's curve.csv files
    (None when there are none)."""
    source = args.curves or args.source
    if not Path(source).is_dir():
        return load_table(source) if args.curves else None
    try:
        curves = collect_curves(source)
    except SourceError:
        if args.curves:
            raise
        return None
    return curves[curves["status"] == "completed"]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 120)
    warnings.showwarning = lambda msg, *a, **k: console.print(f"[yellow]warning:[/] {msg}")
    try:
        table = load_table(args.source)
        report, tuned = run(args, table)
        frontier, frontier_rows, curves = (_frontier(args, table) if args.frontier
                                           else (None, None, None))
    except (FitError, SourceError) as e:
        print(f"scalinglab-fit: error: {e}", file=sys.stderr)
        sys.exit(exits.CONFIG)
    doc = report.to_dict()
    test = on_test_split(report, args.delta)  # test_loss beside val_loss, when measured
    if test is not None:
        doc["test"] = test.to_dict()
    if tuned is not None:
        doc["best_over"] = tuned
    if frontier is not None:
        doc["frontier"] = frontier.to_dict()
    if args.json:
        print(json.dumps(doc))
    else:
        if tuned is not None:
            print_tuned(tuned, args.y, args.x.split(",")[0], console)
        print_report(report, console)
        if test is not None:
            print_report(test, console)
            console.print(f"{test.fits[0].y}: the test split, measured once per run; "
                          f"{args.y}'s laws on the same rows (nothing is chosen by it)")
        if frontier is not None:
            print_frontier(frontier, console)
    if args.out or args.wandb:
        from scalinglab.fit.plots import plot_fits, plot_frontier, plot_residuals

        out = Path(args.out or tempfile.mkdtemp(prefix="scalinglab-fit-"))
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "fit.json", doc)
        files = plot_fits(report, out / "fit") + plot_residuals(report, out / "residuals")
        if frontier is not None:
            files += plot_frontier(frontier, frontier_rows, out / "frontier", args.compute,
                                   args.x.split(",")[0], args.y, curves)
        if args.out:
            console.print(f"fit: {out / 'fit.json'}  plots: {', '.join(p.name for p in files)}")
    if args.wandb:
        from scalinglab.records.wandb import log_fit

        group = args.group or Path(str(args.source).rstrip("/")).name
        run_id = log_fit(doc, files, args.wandb, args.entity, group, str(args.source))
        console.print(f"W&B: fit run {run_id} in project {args.wandb}, group {group}")


if __name__ == "__main__":
    main()
