"""Plots of fits (PNG and SVG, one file each): the data and fitted curves with bootstrap
bands, the residuals, and the compute frontier. matplotlib with no display."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalinglab.files import atomic_write  # noqa: E402
from scalinglab.fit import FitReport, GroupFit  # noqa: E402
from scalinglab.fit.frontier import Frontier, minimum_status, usable  # noqa: E402

EXTEND = 10.0  # draw each curve this factor past the largest x, to show the extrapolation


def save_figure(fig, path: Path, suffixes: tuple[str, ...] = (".png", ".svg"),
                dpi: int = 150) -> list[Path]:
    """The figure as one file per suffix, each written atomically; closes it."""
    out = [path.with_suffix(s) for s in suffixes]
    for p in out:
        atomic_write(p, lambda f, p=p: fig.savefig(f, format=p.suffix[1:], dpi=dpi))
    plt.close(fig)
    return out


def _rows(report: FitReport, f: GroupFit):
    return report.data[report.data["_group"] == f.label]


def _band(f: GroupFit, xs: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    curves = np.array([f.predict(xs, {k: s[k] for k in f.params}) for s in f.samples])
    q = (1 - level) / 2
    return np.nanquantile(curves, q, axis=0), np.nanquantile(curves, 1 - q, axis=0)


def plot_fits(report: FitReport, path: str | Path, title: str | None = None,
              suffixes: tuple[str, ...] = (".png", ".svg")) -> list[Path]:
    """Points (held-out ones hollow), fitted curves (dashed past the fitted data), bands."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for i, f in enumerate(report.fits):
        color, x0, label = f"C{i}", f.x[0], f.label
        rows = _rows(report, f)
        train, test = rows[~rows["_holdout"]], rows[rows["_holdout"]]
        ax.scatter(train[x0], train[f.y], color=color, s=22, zorder=3)
        if len(test):
            ax.scatter(test[x0], test[f.y], facecolors="none", edgecolors=color, s=44, zorder=3,
                       label=f"{label}: held out")
        if len(f.x) == 1:
            last = train[x0].max()
            xs_in = np.geomspace(rows[x0].min(), last, 100)
            xs_out = np.geomspace(last, rows[x0].max() * EXTEND, 100)
            params = ", ".join(f"{k}={v:.3g}" for k, v in f.params.items())
            ax.plot(xs_in, f.predict(xs_in), color=color, label=f"{label} {f.law}: {params}")
            ax.plot(xs_out, f.predict(xs_out), color=color, ls="--")
            if f.samples:
                xs = np.concatenate([xs_in, xs_out])
                ax.fill_between(xs, *_band(f, xs, report.ci), color=color, alpha=0.2, lw=0,
                                label=f"{label}: {report.ci:.0%} bootstrap band")
        else:  # a joint law: its predictions at the runs' own coordinates
            pred = f.predict(rows[f.x].to_numpy(float).T)
            ax.scatter(rows[x0], pred, marker="x", color=color, label=f"{label}: {f.law} fit")
        if "E" in f.params and f.params["E"] > 0.01 * rows[f.y].min():  # E ~ 0: no line
            ax.axhline(f.params["E"], color=color, lw=0.8, ls=":")
    first = report.fits[0]
    ax.set(xscale="log", yscale="log", xlabel=first.x[0], ylabel=first.y,
           title=title or f"{first.y} vs {first.x[0]}")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.25)
    return save_figure(fig, Path(path), suffixes)


def plot_residuals(report: FitReport, path: str | Path) -> list[Path]:
    """log y - log y_hat against x: structure here means the law's form is wrong."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2), constrained_layout=True)
    for i, f in enumerate(report.fits):
        rows = _rows(report, f)
        resid = np.log(rows[f.y]) - np.log(f.predict(rows[f.x].to_numpy(float).T))
        held = rows["_holdout"].to_numpy()
        ax.scatter(rows[f.x[0]][~held], resid[~held], color=f"C{i}", s=18, label=f.label)
        ax.scatter(rows[f.x[0]][held], resid[held], facecolors="none", edgecolors=f"C{i}", s=40)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel=report.fits[0].x[0], ylabel="log residual", title="residuals")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.25)
    return save_figure(fig, Path(path))


def plot_frontier(frontier: Frontier, table, path: str | Path, compute: str = "train_flops",
                  size: str = "params", y: str = "val_loss", curves=None,
                  suffixes: tuple[str, ...] = (".png", ".svg")) -> list[Path]:
    """Left: every run's loss vs compute (coloured by size), its learning curve when `curves`
    has it, and the lowest-loss envelopes (Approach 1). Middle: the IsoFLOP curves, loss vs
    size per budget, with each budget's fitted curve (`frontier.estimator`) and minimum.
    Right: N_opt vs C with its fitted power law (Approach 2), beside the envelopes' sizes."""
    fig, (left, right, third) = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    points = left.scatter(table[compute], table[y], c=np.log10(table[size]), cmap="viridis",
                          s=20)
    fig.colorbar(points, ax=left, label=f"log10 {size}")
    env = frontier.envelope
    left.plot([e["C"] for e in env], [e["loss"] for e in env], color="k", lw=1.2,
              label="lowest-loss envelope")
    if curves is not None and frontier.curves:
        norm = points.norm
        for _, run in curves.groupby("job"):
            run = run.sort_values(compute)
            left.plot(run[compute], run[y], lw=0.6, alpha=0.5,
                      color=points.cmap(norm(np.log10(run[size].iloc[0]))))
        cenv = frontier.curves["envelope"]
        left.step([e["C"] for e in cenv], [e["loss"] for e in cenv], where="post", color="C3",
                  lw=1.2, label="envelope of the learning curves (early points biased)")
    left.set(xscale="log", yscale="log", xlabel=compute, ylabel=y, title="runs and envelope")
    left.legend(fontsize=7)
    for i, b in enumerate(frontier.isoflops):
        sizes = np.array([p[size] for p in b["points"]])
        right.scatter(sizes, [p[y] for p in b["points"]], color=f"C{i}", s=18)
        status = minimum_status(b)
        right.plot(b["fitted"]["N"], b["fitted"]["loss"], color=f"C{i}", lw=1,
                   label=f"C={b['C']:.2g}" + ("" if status == "yes" else
                                               f" (not counted: {status.removeprefix('no: ')})"))
        right.scatter([b["N_opt"]], [b["loss_opt"]], marker="*", s=140, color=f"C{i}",
                      edgecolors="k", zorder=4)
    right.set(xscale="log", xlabel=size, ylabel=y,
              title=f"IsoFLOP curves and their minima ({frontier.estimator})")
    right.legend(fontsize=7)
    inside = [b for b in frontier.isoflops if usable(b)]
    title = "the compute-optimal size"
    if frontier.isoflop_exponent is not None and len(inside) >= 2:
        c = np.array([b["C"] for b in inside])
        n = np.array([b["N_opt"] for b in inside])
        third.scatter(c, n, marker="*", color="k", s=80, zorder=3, label="IsoFLOP minima")
        k = np.exp(np.mean(np.log(n) - frontier.isoflop_exponent * np.log(c)))
        cs = np.geomspace(c.min(), c.max(), 20)
        ci = frontier.isoflop_exponent_ci
        band = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        third.plot(cs, k * cs**frontier.isoflop_exponent, color="C3", lw=1.2,
                   label=f"N_opt ~ C^{frontier.isoflop_exponent:.2f}{band}")
        title = f"the compute-optimal size ({len(inside)} budgets counted)"
    third.plot([e["C"] for e in env], [e["N"] for e in env], ".", color="0.5",
               label="envelope runs (Approach 1)")
    if frontier.curves:
        cenv = frontier.curves["envelope"]
        third.step([e["C"] for e in cenv], [e["N"] for e in cenv], where="post", color="C3",
                   lw=0.8, label="envelope of the learning curves")
    third.set(xscale="log", yscale="log", xlabel=compute, ylabel=f"{size} (N_opt)", title=title)
    third.legend(fontsize=7)
    for ax in (left, right, third):
        ax.grid(True, which="both", alpha=0.25)
    return save_figure(fig, Path(path), suffixes)
