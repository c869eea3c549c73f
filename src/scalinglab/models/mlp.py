"""A plain multilayer perceptron: `depth` hidden layers of `width` units; depth 0 is a linear
model (logistic regression)."""

import math

from torch import Tensor, nn

from scalinglab.models.layers import activation
from scalinglab.models.parametrization import Readout, tag


class MLP(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int,
        width: int,
        activation_name: str = "relu",
        dropout: float = 0.0,
        readout_multiplier: float = 1.0,
        zero_readout: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(input_shape)
        for i in range(depth):
            layers += [tag(nn.Linear(fan_in, width), "hidden" if i else "input"),
                       activation(activation_name)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            fan_in = width
        if depth == 0:  # no width to scale with
            readout_multiplier, zero_readout = 1.0, False
        layers.append(Readout(fan_in, num_classes, readout_multiplier, zero_readout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def mlp_params(input_shape: tuple[int, ...], num_classes: int, depth: int, width: int) -> int:
    """Exact trainable parameter count of `MLP` (weights + biases)."""
    d_in = math.prod(input_shape)
    if depth == 0:
        return (d_in + 1) * num_classes
    return (d_in + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * num_classes
