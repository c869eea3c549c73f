"""Log-log plots of runs and fitted laws (matplotlib, no display needed)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalinglab.fit import FitReport  # noqa: E402

EXTEND = 10.0  # draw each curve this factor past the largest x, to show the extrapolation


def plot_fits(report: FitReport, path: str | Path, title: str | None = None) -> list[Path]:
    """Points (held-out ones hollow), fitted curves (dashed past the data); PNG and SVG."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    data = report.data
    for i, f in enumerate(report.fits):
        color = f"C{i}"
        x0 = f.x[0]
        label = "/".join(map(str, f.group.values())) or "all"
        rows = data[data["_group"] == (label if f.group else "all")]
        train, test = rows[~rows["_holdout"]], rows[rows["_holdout"]]
        ax.scatter(train[x0], train[f.y], color=color, s=22, zorder=3)
        if len(test):
            ax.scatter(test[x0], test[f.y], facecolors="none", edgecolors=color, s=40, zorder=3,
                       label=f"{label} held out")
        if len(f.x) == 1:
            lo, hi = rows[x0].min(), rows[x0].max()
            xs_in = np.geomspace(lo, train[x0].max(), 100)
            xs_out = np.geomspace(train[x0].max(), hi * EXTEND, 100)
            params = ", ".join(f"{k}={v:.3g}" for k, v in f.params.items())
            ax.plot(xs_in, f.predict(xs_in), color=color, label=f"{label}: {params}")
            ax.plot(xs_out, f.predict(xs_out), color=color, ls="--")
        else:  # a joint law: predictions at the runs' own coordinates
            pred = f.predict(rows[f.x].to_numpy(float).T)
            ax.scatter(rows[x0], pred, marker="x", color=color, label=f"{label}: fit")
        if "E" in f.params:
            ax.axhline(f.params["E"], color=color, lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel=report.fits[0].x[0], ylabel=report.fits[0].y,
           title=title or f"{report.fits[0].law} fit")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.25)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for p in out:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return out
