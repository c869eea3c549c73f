"""Width parametrizations for any model with a size argument: standard (sp) and maximal update
(mup; Yang et al. 2021, "Tensor Programs V", the table for Adam).

Each parameter's role comes from its shape at two sizes, the rule the `mup` package uses for
its base shapes: a weight whose fan-out and fan-in both grow with the size argument is
`hidden`, one whose fan-out alone grows is `input`, one whose fan-in alone grows is `readout`;
a weight neither grows with is `fixed`, and vectors (biases, norms' gains) are `vector`. A
weight is (fan-out, fan-in, ...) as in `nn.Linear` and `nn.ConvNd`; an `nn.Embedding`'s and a
transposed convolution's are the other way round.

Under muP, with m = size / base_width:
- input, fixed and vector parameters: init and Adam LR as in SP;
- hidden weights: init as in SP (variance 1/fan-in), Adam LR / m;
- the readout: its input is multiplied by 1/m (a forward pre-hook on its module, as the mup
  package's MuReadout), LR as in SP, and its weight and bias start at zero.
So one LR tuned at the base width holds at every width. At size == base_width, muP is SP but
for the readout's zero start. AdamW decays a weight by lr x weight_decay each step; a hidden
group's weight decay is scaled by m so that this per-step decay is the same at every width.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from scalinglab import ConfigError, check_number

PARAMETRIZATIONS = ("sp", "mup")
# layers whose weight is (fan-in, fan-out, ...)
TRANSPOSED = (nn.Embedding, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
ROLES = ("input", "hidden", "readout", "fixed", "vector")


@dataclass(frozen=True)
class MuP:
    """What the optimizer groups need of a muP model: its width multiplier m and each
    parameter's role, by name. Set on the model as `model.mup` by `apply`."""

    width_mult: float
    roles: dict[str, str]


def check(parametrization: str, base_width) -> float:
    """Validate `model.parametrization` and `model.base_width`; return the base width."""
    if parametrization not in PARAMETRIZATIONS:
        raise ConfigError(f"model.parametrization={parametrization!r} is unknown; choose one "
                          f"of {', '.join(PARAMETRIZATIONS)}")
    return check_number("model.base_width", base_width, low=1)


def _fans(module: nn.Module, shape: torch.Size) -> tuple[int, int]:
    """(fan-out, fan-in) of a weight of `shape` held by `module`."""
    transposed = isinstance(module, TRANSPOSED)
    return (shape[1], shape[0]) if transposed else (shape[0], shape[1])


def roles(small: nn.Module, large: nn.Module) -> dict[str, str]:
    """Each parameter's role, from the same model built at two sizes (`large` the larger)."""
    at_large = dict(large.named_parameters())
    if set(at_large) != {name for name, _ in small.named_parameters()}:
        raise ConfigError("model: its parameters are not the same at two sizes (only their "
                          "shapes may change with the size argument), so muP cannot match "
                          "them up")
    out = {}
    for name, p in small.named_parameters():
        if p.ndim < 2:
            out[name] = "vector"
            continue
        owner = small.get_submodule(name.rpartition(".")[0])
        (out_a, in_a), (out_b, in_b) = _fans(owner, p.shape), _fans(owner, at_large[name].shape)
        grows = (out_b != out_a, in_b != in_a)
        out[name] = {(True, True): "hidden", (True, False): "input",
                     (False, True): "readout", (False, False): "fixed"}[grows]
    return out


class ScaleInput:
    """A forward pre-hook: the module's input times `multiplier` (muP's readout, 1/m)."""

    def __init__(self, multiplier: float) -> None:
        self.multiplier = multiplier

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        return (args[0] * self.multiplier, *args[1:])


def apply(model: nn.Module, build: Callable[[int], nn.Module], size: int,
          base_width: float) -> nn.Module:
    """Make `model` (built at `size`) a muP model: its roles from `build` at two sizes, its
    readout scaled by 1/m and zeroed, `model.mup` set."""
    found = roles(build(size), build(2 * size))
    m = size / base_width
    readouts = {name.rpartition(".")[0] for name, role in found.items() if role == "readout"}
    if "" in readouts:  # its input would be the model's own
        raise ConfigError("model.parametrization=mup: the readout weight is a parameter of "
                          "the model itself; put the readout in a submodule (an nn.Linear)")
    for name in readouts:
        module = model.get_submodule(name)
        module.register_forward_pre_hook(ScaleInput(1 / m))
        with torch.no_grad():  # PyTorch's default init scales with the width: start at zero
            for p in module.parameters(recurse=False):
                p.zero_()
    model.mup = MuP(m, found)
    return model


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: no weight decay on vectors (biases, norms); under muP, hidden
    weights at lr / m with weight decay x m. The first group is always at `lr` (it is the one
    logged). Use it in your own LightningModule's `configure_optimizers` for muP."""
    mup: MuP | None = getattr(model, "mup", None)
    m = mup.width_mult if mup is not None else 1.0
    decay, no_decay, hidden = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2:
            no_decay.append(p)
        elif mup is not None and mup.roles.get(name) == "hidden" and m != 1.0:
            hidden.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay},
              {"params": no_decay, "lr": lr, "weight_decay": 0.0},
              {"params": hidden, "lr": lr / m, "weight_decay": weight_decay * m}]
    return [g for g in groups if g["params"]]
