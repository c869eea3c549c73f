"""Model families and their sizing. Models are plain `nn.Module`s; Lightning lives in module.py."""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from scalinglab import ConfigError, check_number
from scalinglab.models.cnn import CNN, cnn_params
from scalinglab.models.layers import ACTIVATIONS
from scalinglab.models.mlp import MLP, mlp_params
from scalinglab.models.parametrization import check as check_parametrization


@dataclass(frozen=True)
class Family:
    cls: type[nn.Module]
    count: Callable[..., int]  # (input_shape, num_classes, depth, width, **kw) -> exact params


FAMILIES = {"mlp": Family(MLP, mlp_params), "cnn": Family(CNN, cnn_params)}
MAX_WIDTH = 1 << 20
POOLS = ("avg", "max", "flatten")


def solve_width(family: str, target_params: int, depth: int, input_shape, num_classes, **kw) -> int:
    """The integer width whose exact parameter count is closest to `target_params`."""
    count = FAMILIES[family].count
    lo, hi = 1, MAX_WIDTH
    while lo < hi:  # smallest width with count >= target; counts grow with width
        mid = (lo + hi) // 2
        if count(input_shape, num_classes, depth, mid, **kw) >= target_params:
            hi = mid
        else:
            lo = mid + 1
    candidates = [w for w in (lo - 1, lo) if w >= 1]
    return min(candidates, key=lambda w: abs(count(input_shape, num_classes, depth, w, **kw)
                                            - target_params))


def build_model(
    family: str,
    depth: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int | None = None,
    target_params: int | None = None,
    activation: str = "relu",
    dropout: float = 0.0,
    parametrization: str = "sp",
    base_width: float = 32,
    **family_kwargs,
) -> nn.Module:
    """Build `family` at `depth` x `width`, or solve the width from `target_params`.
    `parametrization`: sp, or mup relative to `base_width` (models/parametrization.py).

    Raises ConfigError, naming the `model.*` key, on any bad value.
    """
    if family not in FAMILIES:
        raise ConfigError(f"model.family={family!r} is unknown; choose one of {sorted(FAMILIES)}")
    # an MLP of depth 0 is a linear model (logistic regression)
    depth = check_number("model.depth", depth, low=0 if family == "mlp" else 1, integer=True)
    if activation not in ACTIVATIONS:
        raise ConfigError(f"model.activation={activation!r} is unknown; "
                          f"choose one of {sorted(ACTIVATIONS)}")
    dropout = check_number("model.dropout", dropout, 0, 1, high_open=True)
    base_width = check_parametrization(parametrization, base_width)
    if family == "cnn":
        check_cnn(depth, **family_kwargs)
    count_kw = {k: v for k, v in family_kwargs.items() if k in ("kernel_size", "min_size", "pool",
                                                                   "padding")}
    if target_params is not None:
        target_params = check_number("model.target_params", target_params, low=1)
        width = solve_width(family, int(target_params), depth, input_shape, num_classes, **count_kw)
    width = check_number("model.width", width, low=1, integer=True)
    multiplier = base_width / width if parametrization == "mup" else 1.0
    model = FAMILIES[family].cls(input_shape, num_classes, depth, int(width), activation, dropout,
                                 readout_multiplier=multiplier,
                                 zero_readout=parametrization == "mup", **family_kwargs)
    model.family, model.depth, model.width = family, depth, int(width)
    model.parametrization, model.base_width = parametrization, base_width
    return model


def check_cnn(depth: int, kernel_size=None, pool: str = "flatten", padding=None, **_) -> None:
    if pool not in POOLS:
        raise ConfigError(f"model.pool={pool!r} is unknown; choose one of {', '.join(POOLS)}")
    if padding is not None:
        check_number("model.padding", padding, low=0, integer=True)
    if kernel_size is None or isinstance(kernel_size, int):
        return
    if len(kernel_size) != depth:
        raise ConfigError(f"model.kernel_size={list(kernel_size)} needs one size per block "
                          f"(model.depth={depth})")
    for k in kernel_size:
        check_number("model.kernel_size", k, low=1, integer=True)


def count_params(model: nn.Module) -> int:
    """Trainable parameters, counted on the built module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
