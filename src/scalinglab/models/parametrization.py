"""Width parametrizations: standard (sp) and maximal update (mup; Yang et al. 2021, "Tensor
Programs V", the table for Adam).

Under muP, with m = width / base_width:
- input weights (a fixed fan-in into the width) and every bias: init and Adam LR as in SP;
- hidden weights (width into width, convolutions included): init as in SP (variance 1/fan-in),
  Adam LR / m;
- the readout (width into the classes): its input is multiplied by 1/m, LR as in SP, and it
  starts at zero (weights and bias).
So one LR tuned at the base width holds at every width. At width == base_width, muP is SP but
for the readout's zero start.
AdamW decays a weight by lr x weight_decay each step; a hidden group's weight decay is scaled
by m so that this per-step decay is the same at every width.

Our own few lines rather than the `mup` package: that needs a base and a delta model built per
run (`set_base_shapes`) and its own optimizer classes, and these two families have exactly
three kinds of layer, tagged by the models themselves (`role`).
"""

from torch import Tensor, nn

from scalinglab import ConfigError, check_number

PARAMETRIZATIONS = ("sp", "mup")


def check(parametrization: str, base_width) -> float:
    """Validate `model.parametrization` and `model.base_width`; return the base width."""
    if parametrization not in PARAMETRIZATIONS:
        raise ConfigError(f"model.parametrization={parametrization!r} is unknown; choose one "
                          f"of {', '.join(PARAMETRIZATIONS)}")
    return check_number("model.base_width", base_width, low=1)


def tag(layer: nn.Module, role: str) -> nn.Module:
    """Mark a layer's role for the optimizer groups."""
    layer.role = role
    return layer


class Readout(nn.Linear):
    """The head: a linear layer whose weights' contribution is scaled by `multiplier` (1/m
    under muP), and whose weights and bias start at zero under muP (the mup package's
    readout_zero_init)."""

    def __init__(self, in_features: int, out_features: int, multiplier: float = 1.0,
                 zero_init: bool = False) -> None:
        super().__init__(in_features, out_features)
        self.multiplier = multiplier
        if zero_init:  # PyTorch's default init scales both with the width
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)
        tag(self, "readout")

    def forward(self, x: Tensor) -> Tensor:
        # on the input, as the mup package's MuReadout: the bias is not scaled
        return super().forward(x if self.multiplier == 1.0 else x * self.multiplier)


def width_mult(model: nn.Module) -> float:
    """m = width / base_width under muP; 1 under SP."""
    if getattr(model, "parametrization", "sp") != "mup":
        return 1.0
    return model.width / model.base_width


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: no weight decay on biases; under muP, hidden weights at lr / m
    with weight decay x m. The first group is always at `lr` (it is the one logged)."""
    m = width_mult(model)
    decay, no_decay, hidden = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p.ndim < 2 or name != "weight":
                no_decay.append(p)
            elif getattr(module, "role", None) == "hidden" and m != 1.0:
                hidden.append(p)
            else:
                decay.append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay},
              {"params": no_decay, "lr": lr, "weight_decay": 0.0},
              {"params": hidden, "lr": lr / m, "weight_decay": weight_decay * m}]
    return [g for g in groups if g["params"]]
