"""A plain CNN: `depth` conv blocks of `width` channels, then a linear head on the flattened
last feature map (`pool=flatten`, the default, as the MNIST-1D paper's CNN) or on globally
pooled features (`pool=avg|max`).

It is 1-D for inputs shaped (channels, length) and 2-D for (channels, height, width). A block
halves the spatial size (stride 2) while that size is above `min_size`, so deep nets on short
MNIST-1D signals stay valid. `kernel_size` is one size for every block or one per block;
`padding` is k // 2 for a kernel k unless set (the MNIST-1D paper pads every block by 1).
"""

import math

from torch import Tensor, nn

from scalinglab import ConfigError, check_number
from scalinglab.models.layers import check_activation, make_activation


def spatial_dims(input_shape: tuple[int, ...]) -> int:
    """1 for a 1-D signal ((L,) or (C, L)), 2 for an image (C, H, W)."""
    if len(input_shape) not in (1, 2, 3):
        raise ValueError(f"CNN needs an input of 1 to 3 dims, got shape {input_shape}")
    return 2 if len(input_shape) == 3 else 1


def default_kernel(input_shape: tuple[int, ...]) -> int:
    return 3 if spatial_dims(input_shape) == 2 else 5


def blocks(input_shape: tuple[int, ...], depth: int, kernel_size=None, min_size: int = 4,
           padding: int | None = None) -> tuple[list[tuple[int, int, int]], tuple[int, ...]]:
    """Each block's (kernel, stride, padding), and the spatial shape after the last block."""
    kernels = kernel_size or default_kernel(input_shape)
    kernels = [kernels] * depth if isinstance(kernels, int) else list(kernels)
    shape = (1, *input_shape) if len(input_shape) == 1 else tuple(input_shape)
    sizes, plan = tuple(shape[1:]), []
    for k in kernels:
        stride = 2 if min(sizes) > min_size else 1
        pad = k // 2 if padding is None else padding
        plan.append((k, stride, pad))
        sizes = tuple((n + 2 * pad - k) // stride + 1 for n in sizes)
        if min(sizes) < 1:
            raise ConfigError(f"model.kernel_size={k} with model.padding={pad} is larger than "
                              f"the feature map it meets (block {len(plan)})")
    return plan, sizes


POOLS = ("avg", "max", "flatten")


def check(depth: int, kernel_size, pool: str, padding) -> None:
    """The CNN's own settings, each error naming its `model.*` key."""
    check_number("model.depth", depth, low=1, integer=True)
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


class CNN(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        depth: int = 3,
        width: int = 32,
        activation: str = "relu",
        dropout: float = 0.0,
        kernel_size: int | list[int] | None = None,
        min_size: int = 4,
        pool: str = "flatten",
        padding: int | None = None,
    ) -> None:
        super().__init__()
        check(depth, kernel_size, pool, padding)
        width = check_number("model.width", width, low=1, integer=True)
        dropout = check_number("model.dropout", dropout, 0, 1, high_open=True)
        check_activation(activation)
        dims = spatial_dims(input_shape)
        shape = (1, *input_shape) if len(input_shape) == 1 else tuple(input_shape)
        self.input_shape = shape
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        plan, sizes = blocks(input_shape, depth, kernel_size, min_size, padding)
        channels, layers = shape[0], []
        for k, stride, pad in plan:
            layers += [conv(channels, width, k, stride=stride, padding=pad),
                       make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            channels = width
        if pool == "flatten":  # the readout sees the whole last feature map
            layers += [nn.Flatten(), nn.Linear(width * math.prod(sizes), num_outputs)]
        else:
            pooling = {"max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d),
                       "avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)}[pool][dims - 1]
            layers += [pooling(1), nn.Flatten(), nn.Linear(width, num_outputs)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(x.shape[0], *self.input_shape))
