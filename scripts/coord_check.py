"""Coordinate check (Yang et al. 2021): does a layer's activation scale stay put as the model
widens? Trains each width a few AdamW steps at one LR, on MNIST-1D, and measures every layer's
mean |output| after the last step, under sp and mup. Under muP every curve is flat in width;
under SP the readout's grows with it (and so the best LR shrinks as width grows).

    python scripts/coord_check.py --out docs/coord_check.png
    python scripts/coord_check.py --family cnn --json
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scalinglab.data import MNIST1D
from scalinglab.models import build_model
from scalinglab.models.parametrization import param_groups


def activations(family: str, width: int, parametrization: str, x, y, steps: int, lr: float,
                base_width: int, seed: int) -> dict[str, float]:
    """Mean |output| of each tagged layer (input, hidden..., readout) on the batch after
    `steps` AdamW steps on it."""
    torch.manual_seed(seed)
    model = build_model(family, depth=3, input_shape=(1, 40), num_classes=10, width=width,
                        parametrization=parametrization, base_width=base_width)
    opt = torch.optim.AdamW(param_groups(model, lr, 0.0), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    layers = [(f"{m.role}{i}" if m.role == "hidden" else m.role, m)
              for i, m in enumerate(m for m in model.modules() if hasattr(m, "role"))]
    seen: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name:
                                     seen.__setitem__(name, out.abs().mean().item()))
             for name, m in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def coord_check(family: str = "mlp", widths=(32, 64, 128, 256, 512, 1024), steps: int = 5,
                lr: float = 3e-3, base_width: int = 32, seeds=(0, 1, 2),
                data_dir: str = "data") -> dict:
    """{parametrization: {layer: [mean |output| per width]}}, averaged over seeds, and each
    curve's log-log slope against width."""
    dm = MNIST1D(data_dir=data_dir)
    x, y, _, _ = dm.load()
    x, y = x[:256], y[:256]
    out = {"widths": list(widths), "family": family, "steps": steps, "lr": lr}
    for p in ("sp", "mup"):
        runs = [[activations(family, w, p, x, y, steps, lr, base_width, s) for w in widths]
                for s in seeds]
        layers = runs[0][0].keys()
        curves = {name: [float(np.mean([run[i][name] for run in runs]))
                         for i in range(len(widths))] for name in layers}
        slopes = {name: float(np.polyfit(np.log(widths), np.log(c), 1)[0])
                  for name, c in curves.items()}
        out[p] = {"curves": curves, "slopes": slopes}
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, constrained_layout=True)
    for ax, p in zip(axes, ("sp", "mup"), strict=True):
        for name, curve in result[p]["curves"].items():
            slope = result[p]["slopes"][name]
            ax.plot(result["widths"], curve, "o-", ms=3, label=f"{name} (slope {slope:+.2f})")
        ax.set(xscale="log", yscale="log", xlabel="width", title=f"{p}: after {result['steps']} "
               f"AdamW steps at lr {result['lr']:g}")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean |layer output|")
    fig.suptitle(f"coordinate check, {result['family']} on MNIST-1D")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", default="mlp", choices=("mlp", "cnn"))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", default=None, help="write the plot here (PNG)")
    p.add_argument("--json", action="store_true", help="print the curves and slopes as JSON")
    p.add_argument("--data-dir", default=os.environ.get("SCALINGLAB_DATA_DIR", "data"))
    args = p.parse_args()
    result = coord_check(args.family, steps=args.steps, lr=args.lr, data_dir=args.data_dir)
    if args.out:
        plot(result, Path(args.out))
    if args.json:
        print(json.dumps(result))
        return
    for par in ("sp", "mup"):
        slopes = ", ".join(f"{k} {v:+.3f}" for k, v in result[par]["slopes"].items())
        print(f"{par}: log-log slope of mean |output| vs width: {slopes}")


if __name__ == "__main__":
    main()
