"""The report's figures, drawn from its sections' data (sections.py), one PNG each beside the
page. matplotlib with no display."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scalinglab.fit.plots import plot_fits, plot_frontier, save_figure  # noqa: E402
from scalinglab.report.sections import LR, RESOURCES, by_group, label  # noqa: E402


def _save(fig, path: Path) -> str:
    save_figure(fig, path, (".png",), dpi=120)
    return path.name


def lines(table: pd.DataFrame, keys: list[str], y: str, ylabel: str, path: Path,
          fits: dict | None = None, logy: bool = True) -> str:
    """y against params per group, with each group's power law from `fits`."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for i, (value, rows) in enumerate(by_group(table, keys)):
        rows = rows.sort_values("params")
        ax.plot(rows["params"], rows[y], "o", color=f"C{i}", label=label(keys, value), ms=4)
        f = (fits or {}).get(value)
        if f is not None:
            xs = np.geomspace(rows["params"].min(), rows["params"].max(), 50)
            ax.plot(xs, f(xs), color=f"C{i}", lw=1, label=f"  N^{f.k:.2f}")
    ax.set(xscale="log", yscale="log" if logy else "linear", xlabel="params", ylabel=ylabel)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    return _save(fig, path)


def performance(section: dict, table: pd.DataFrame, keys: list[str], out: Path) -> list[str]:
    images = []
    if section["report"] is not None:
        plot_fits(section["report"], out / "performance_loss",
                  title=f"{section['y']} vs params", suffixes=(".png",))
        images.append("performance_loss.png")
    if "val_acc" in table and table["val_acc"].notna().any():  # a regressor has none
        images.append(lines(table, keys, "val_acc", "val_acc", out / "performance_acc.png",
                            logy=False))
    return images


def best_lr(section: dict, table: pd.DataFrame, out: Path) -> str:
    """y against the LR per size, one panel per setting the sweep also varied, each size's
    best LR starred."""
    y, varying = section["y"], section["varying"]
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
        ax.set(xscale="log", yscale="log", xlabel=LR, title=label(varying, value))
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, title="params")
    axes[0][0].set_ylabel(y)
    return _save(fig, out / "best_lr.png")


def frontier(section: dict, table: pd.DataFrame, out: Path, y: str,
             curves: pd.DataFrame | None) -> str:
    plot_frontier(section["front"], table, out / "frontier", y=y, curves=curves,
                  suffixes=(".png",))
    return "frontier.png"


def generalisation(section: dict, keys: list[str], out: Path) -> str:
    return lines(section["table"], keys, "gap", "val_loss − train_loss",
                 out / "generalisation.png", logy=False)


def resources(section: dict, table: pd.DataFrame, keys: list[str], out: Path) -> list[str]:
    return [lines(table, keys, column, RESOURCES[column], out / f"resources_{column}.png", fits)
            for column, fits in section["fits"].items()]


def growing(section: dict, out: Path) -> str:
    """The rounds on the metric-vs-size plot, the last fit, the target and the answer."""
    doc, target = section["doc"], section["target"]
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
        ax.plot(xs, target.error(err), "k--", lw=1, label=f"last fit ({fitted[-1]['law']})")
    ax.axhline(target.value, color="C3", lw=1, ls=":", label=f"target {doc['target']}")
    if doc.get("answer"):
        ax.plot([doc["answer"]["params"]], [doc["answer"][column]], "*", ms=16, color="gold",
                markeredgecolor="k", label="answer", zorder=4)
    ax.set(xscale="log", xlabel="params", ylabel=column, title=f"growing to {doc['target']}")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    return _save(fig, out / "grow.png")
