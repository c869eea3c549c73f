"""`scalinglab-fit SOURCE`: fit a scaling law to a sweep directory or a table of runs."""

import argparse
import json
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from scalinglab.fit import FitError, FitReport, fit
from scalinglab.fit.laws import LAWS
from scalinglab.records import SourceError, load_table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scalinglab-fit", description=__doc__)
    p.add_argument("source",
                   help="a sweep directory (its run.json records) or a CSV/Parquet/JSONL file")
    p.add_argument("--x", default="params", help="x column(s), comma-separated (default: params)")
    p.add_argument("--y", default="val_loss", help="y column (default: val_loss)")
    p.add_argument("--law", default="power_offset", choices=sorted(LAWS))
    p.add_argument("--group-by", default=None,
                   help="columns to fit separately (default: family, when present)")
    p.add_argument("--holdout-largest", type=int, default=0, metavar="K",
                   help="hold out the K largest x values per group and report their error")
    p.add_argument("--holdout", default=None, metavar="EXPR",
                   help="hold out the rows this pandas query selects, e.g. 'params > 1e5'")
    p.add_argument("--delta", type=float, default=1e-3, help="Huber delta on log residuals")
    p.add_argument("--out", default=None, help="write fit.json and fit.png/.svg here")
    p.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    return p.parse_args(argv)


def print_table(report: FitReport, console: Console) -> None:
    first = report.fits[0]
    names = list(first.params)
    table = Table(title=f"{first.law}: {first.y} vs {', '.join(first.x)}")
    for col in ("group", *names, "n_fit", "rmse_log_fit", "n_holdout", "rmse_log_holdout"):
        table.add_column(col, justify="right")
    for f in report.fits:
        hold = "-" if f.rmse_log_holdout is None else f"{f.rmse_log_holdout:.4f}"
        table.add_row("/".join(map(str, f.group.values())) or "all",
                      *(f"{f.params[n]:.4g}" for n in names), str(f.n_fit),
                      f"{f.rmse_log_fit:.4f}", str(f.n_holdout), hold)
    console.print(table)


def run(args: argparse.Namespace) -> FitReport:
    table = load_table(args.source)
    group_by = args.group_by
    if group_by is None and "family" in table.columns:
        group_by = "family"
    return fit(table, x=args.x, y=args.y, law=args.law, group_by=group_by or None,
               holdout_largest=args.holdout_largest, holdout=args.holdout, delta=args.delta)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 120)
    warnings.showwarning = lambda msg, *a, **k: console.print(f"[yellow]warning:[/] {msg}")
    try:
        report = run(args)
    except (FitError, SourceError) as e:
        print(f"scalinglab-fit: error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.out:
        from scalinglab.fit.plots import plot_fits

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".fit.json.tmp"
        tmp.write_text(json.dumps(report.to_dict(), indent=2))
        tmp.replace(out / "fit.json")
        plots = plot_fits(report, out / "fit")
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print_table(report, console)
    if args.out:
        console.print(f"fit: {out / 'fit.json'}  plot: {', '.join(map(str, plots))}")


if __name__ == "__main__":
    main()
