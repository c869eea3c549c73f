"""Small pieces shared by the model families."""

from torch import nn

from scalinglab import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ConfigError(f"model.activation={name!r} is unknown; "
                          f"choose one of {sorted(ACTIVATIONS)}")


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()
