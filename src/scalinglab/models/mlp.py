"""A plain multilayer perceptron: `depth` hidden layers of `width` units; depth 0 is a linear
model (logistic regression)."""

import math

from torch import Tensor, nn

from scalinglab import check_number
from scalinglab.models.layers import check_activation, make_activation


class MLP(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        depth: int = 2,
        width: int = 128,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        depth = check_number("model.depth", depth, low=0, integer=True)
        width = check_number("model.width", width, low=1, integer=True)
        dropout = check_number("model.dropout", dropout, 0, 1, high_open=True)
        check_activation(activation)
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            fan_in = width
        layers.append(nn.Linear(fan_in, num_outputs))  # the readout
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
