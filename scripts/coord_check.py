"""Coordinate check (Yang et al. 2021): does a layer's activation scale stay put as the model
widens? Trains each width a few AdamW steps at one LR on one training batch, and measures the
mean |output| of every layer with a width-dependent weight (input, hidden, readout: the roles
models/parametrization.py infers) after the last step, under sp and mup. Under muP every curve
is flat in width; under SP the readout's grows with it (and so the best LR shrinks as width
grows).

Any model config works, the user's own included (a ./conf where you run it extends the
project's): the arguments are Hydra overrides of the training config, and the size argument
(`model.size_arg`) is what widens.

    python scripts/coord_check.py --out docs/coord_check.png
    python scripts/coord_check.py model=cnn --json
    cd my_project && python /path/to/scripts/coord_check.py model=resnet data=digits
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from scalinglab import CONF_DIR
from scalinglab.models import build_model, data_args
from scalinglab.models.parametrization import param_groups
from scalinglab.train.job import first_batch


def activations(model_cfg: dict, data: dict, roles: dict[str, str], x, y, loss, steps: int,
                lr: float, seed: int) -> dict[str, float]:
    """Mean |output| of each layer with a width-dependent weight (by `roles`), on the batch,
    after `steps` AdamW steps on it."""
    torch.manual_seed(seed)
    model = build_model(model_cfg, data).model
    opt = torch.optim.AdamW(param_groups(model, lr, 0.0), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        opt.step()
    layers, hidden = [], 0
    for name, role in roles.items():
        if role in ("input", "hidden", "readout") and name.endswith("weight"):
            label = f"hidden{hidden}" if role == "hidden" else role
            hidden += role == "hidden"
            layers.append((label, model.get_submodule(name.rpartition(".")[0])))
    seen: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, label=label:
                                     seen.__setitem__(label, out.abs().mean().item()))
             for label, m in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def coord_check(overrides: list[str] = (), widths=(32, 64, 128, 256, 512, 1024),
                steps: int = 5, lr: float = 3e-3, base_width: int = 32, seeds=(0, 1, 2),
                data_dir: str = "data", batch: int = 256) -> dict:
    """{parametrization: {layer: [mean |output| per width]}}, averaged over seeds, and each
    curve's log-log slope against width."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.data_dir={data_dir}",
                                          f"data.batch_size={batch}", "paths.output_dir=."])
    datamodule = instantiate(cfg.data)
    _, (x, y) = first_batch(datamodule)
    data = data_args(datamodule, x)
    module = instantiate(cfg.module, model=torch.nn.Identity())
    loss = getattr(module, "loss", F.cross_entropy)  # a scalinglab task's own loss
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    size_arg = model_cfg.get("size_arg") or "width"
    out = {"widths": list(widths), "model": cfg.model.get("family"), "size_arg": size_arg,
           "steps": steps, "lr": lr}
    at = {**model_cfg, "target_params": None, "base_width": base_width}
    # each parameter's role as muP infers it; the names are the same at every width
    roles = build_model({**at, size_arg: widths[0], "parametrization": "mup"}, data).model.mup.roles
    for p in ("sp", "mup"):
        runs = [[activations({**at, size_arg: w, "parametrization": p}, data, roles, x, y, loss,
                             steps, lr, s) for w in widths] for s in seeds]
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
        ax.set(xscale="log", yscale="log", xlabel=result["size_arg"],
               title=f"{p}: after {result['steps']} AdamW steps at lr {result['lr']:g}")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean |layer output|")
    fig.suptitle(f"coordinate check, {result['model']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", default="32,64,128,256,512,1024")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--base-width", type=int, default=32)
    p.add_argument("--out", default=None, help="write the plot here (PNG)")
    p.add_argument("--json", action="store_true", help="print the curves and slopes as JSON")
    p.add_argument("--data-dir", default=os.environ.get("SCALINGLAB_DATA_DIR", "data"))
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=cnn")
    args = p.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    result = coord_check(args.overrides, widths, args.steps, args.lr, args.base_width,
                         data_dir=args.data_dir)
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
