"""`scalinglab-report SOURCE [--out DIR]`: one self-contained HTML page, with its figures as PNG
files beside it, answering a scaling study's questions (sections.py). Runs are grouped as
`scalinglab-fit` groups them (fit.default_groups). Every warning the sections raise (runs
skipped, rows dropped) is shown on the page."""

import argparse
import contextlib
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from scalinglab import exits
from scalinglab.files import atomic_write, read_json
from scalinglab.fit import FitError, default_groups
from scalinglab.grow import GROW_NAME
from scalinglab.records.tables import SourceError, collect_curves, load_table
from scalinglab.report import figures, sections

TEMPLATE = "page.html.j2"


def number(value, digits: int = 3) -> str:
    """A table cell: numbers to `digits` significant digits, missing values as a dash."""
    if value is None or (isinstance(value, float | np.floating) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}g}"
    return str(value)


def interval(ci) -> str:
    return f" [{number(ci[0])}, {number(ci[1])}]" if ci else ""


def _note(caught: warnings.WarningMessage) -> str:
    return f"{caught.category.__name__}: {caught.message}"


def render(**context) -> str:
    env = Environment(loader=PackageLoader("scalinglab.report", "."),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters.update(number=number, interval=interval)
    env.globals["isna"] = pd.isna
    return env.get_template(TEMPLATE).render(**context)


def build(table: pd.DataFrame, out: Path, title: str, y: str = "val_loss",
          target_loss: float | None = None, target_acc: float | None = None,
          bootstrap: int = 200, ci: float = 0.95, curves: pd.DataFrame | None = None,
          grow: dict | None = None, notes: list[str] | None = None) -> Path:
    """Write `report.html` and its figures into `out`; return the page's path. `curves`: the
    jobs' learning curves (records.tables.collect_curves), for the frontier's Approach 1;
    `grow`: a grow search's grow.json; `notes`: what reading the runs warned about."""
    for column in ("params", y):
        if column not in table:
            raise SourceError(f"the runs have no {column!r} column; have {sorted(table)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if "status" in table:
            skipped = table[table["status"] != "completed"]
            if len(skipped):
                warnings.warn(f"left out {len(skipped)} run(s) that did not complete: "
                              f"{skipped['status'].value_counts().to_dict()}", stacklevel=2)
            table = table[table["status"] == "completed"]
        if curves is not None:
            curves = curves[curves["status"] == "completed"]
        if len(table) < 3:
            raise SourceError(f"{len(table)} completed run(s); a report needs at least 3")
        out.mkdir(parents=True, exist_ok=True)
        keys = default_groups(table, "params")
        page = {"performance": sections.performance(table, keys, y, bootstrap, ci),
                "joint": sections.joint(table, y),
                "best_lr": sections.best_lr(table, keys, y),
                "frontier": sections.frontier(table, y, bootstrap, ci, curves),
                "generalisation": sections.generalisation(table, keys),
                "resources": sections.resources(table, keys),
                "grow": sections.growing(grow)}
        page["stopping"] = sections.stopping_rule(table, y, target_loss, target_acc, bootstrap,
                                                  ci, page["resources"]["fits"], keys)
        images = {"performance": figures.performance(page["performance"], table, keys, out),
                  "resources": figures.resources(page["resources"], table, keys, out)}
        if page["generalisation"]["rows"] is not None:
            images["generalisation"] = figures.generalisation(page["generalisation"], keys, out)
        if page["best_lr"]:
            images["best_lr"] = figures.best_lr(page["best_lr"], table, out)
        if page["frontier"]:
            images["frontier"] = figures.frontier(page["frontier"], table, out, y, curves)
        if page["grow"]:
            images["grow"] = figures.growing(page["grow"], out)
    notes = list(dict.fromkeys([*(notes or []), *map(_note, caught)]))
    summary = (f"{len(table)} completed runs, {table['params'].nunique()} sizes "
               f"({table['params'].min():,.0f} to {table['params'].max():,.0f} params); "
               f"grouped by {', '.join(keys) or 'nothing'}.")
    html = render(title=title, summary=summary, y=y, images=images, notes=notes, **page)
    return atomic_write(out / "report.html", html)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scalinglab-report", description=__doc__.split("\n")[0])
    p.add_argument("source", help="a sweep directory, a table of runs, or wandb:ENTITY/PROJECT")
    p.add_argument("--out", default=None, help="output directory (default: SOURCE/report)")
    p.add_argument("--y", default="val_loss", help="the loss column (default: val_loss)")
    p.add_argument("--target-loss", type=float, default=None)
    p.add_argument("--target-acc", type=float, default=None)
    p.add_argument("--bootstrap", type=int, default=200, help="resamples for the intervals")
    p.add_argument("--ci", type=float, default=0.95, help="interval level (default 0.95)")
    args = p.parse_args(argv)
    try:
        if not 0 < args.ci < 1 or args.bootstrap < 0:
            raise FitError(f"need --bootstrap >= 0 and 0 < --ci < 1, got {args.bootstrap}, "
                           f"{args.ci}")
        default = Path(args.source) / "report" if Path(args.source).is_dir() else None
        out = Path(args.out) if args.out else default
        if out is None:
            raise SourceError("--out is needed when SOURCE is not a sweep directory")
        curves = grow = None
        with warnings.catch_warnings(record=True) as caught:  # e.g. W&B runs skipped
            warnings.simplefilter("always")
            table = load_table(args.source)
            if default is not None:  # a sweep directory: its jobs' learning curves, if any
                with contextlib.suppress(SourceError):
                    curves = collect_curves(args.source)
        if default is not None and (Path(args.source) / GROW_NAME).exists():  # a grow search
            grow = read_json(Path(args.source) / GROW_NAME)
        path = build(table, out, f"Scaling report: {args.source}", args.y, args.target_loss,
                     args.target_acc, args.bootstrap, args.ci, curves, grow,
                     notes=[_note(w) for w in caught])
    except (SourceError, FitError) as e:
        print(f"scalinglab-report: error: {e}", file=sys.stderr)
        sys.exit(exits.CONFIG)
    print(f"report: {path}")


if __name__ == "__main__":
    main()
