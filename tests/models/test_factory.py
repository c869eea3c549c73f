"""Any model: a callable of the user's, sized by its own argument, its parameters counted on
the meta device, and its mistakes as one config error each."""

import pytest
import torch
from torch import nn

from scalinglab import ConfigError
from scalinglab.models import build_model, count_params, solve_size

DATA = {"input_shape": (3, 8, 8), "num_classes": 5, "num_outputs": 5}


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + torch.relu(self.norm(self.conv(x)))


class TinyResNet(nn.Module):
    """A user's model: sized by `channels`, told its classes, not its input shape."""

    built_for_real = 0  # constructions that allocated real parameters (not on meta)

    def __init__(self, num_classes: int, channels: int = 8, blocks: int = 2) -> None:
        super().__init__()
        TinyResNet.built_for_real += torch.empty(0).device.type != "meta"
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(Block(channels) for _ in range(blocks)))
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def tiny_resnet(num_classes: int, channels: int, blocks: int = 2) -> nn.Module:
    """The same, from a factory function."""
    return TinyResNet(num_classes, channels, blocks)


class NeedsRealTensors(nn.Module):
    """A constructor the meta device cannot run (it reads a value)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = nn.Linear(4, width)
        assert self.layer.weight.abs().sum().item() >= 0

    def forward(self, x):
        return self.layer(x)


def not_a_module(width: int):
    return {"width": width}


def fixed_size(width: int) -> nn.Module:
    return nn.Linear(4, 2)


def bottleneck(width: int, base_width: int = 64) -> nn.Module:
    """A model whose own `base_width` means something else (as timm's ResNet's does)."""
    return nn.Linear(base_width, width)


def adapts_to_mup(width: int, parametrization: str = "sp", base_width: float = 1.0) -> nn.Module:
    model = nn.Sequential(nn.Linear(4, width), nn.Linear(width, 2))
    model.told = (parametrization, base_width)
    return model


def cfg(target: str, **kw) -> dict:
    return {"_target_": f"{__name__}.{target}", "family": "resnet", **kw}


@pytest.mark.parametrize("target", ["TinyResNet", "tiny_resnet"])
def test_a_users_model_is_sized_by_its_own_argument(target):
    before = TinyResNet.built_for_real
    solved = build_model(cfg(target, size_arg="channels", target_params=20_000, blocks=3), DATA)
    # built for real once: the candidates were counted on the meta device
    assert TinyResNet.built_for_real == before + 1
    c = solved.width
    assert solved.family == "resnet" and solved.model.head.out_features == 5  # the data's
    for other in (c - 1, c + 1):  # no other channel count comes closer
        neighbour = count_params(TinyResNet(5, other, 3))
        assert abs(solved.params - 20_000) <= abs(neighbour - 20_000)


def test_the_config_wins_over_the_data_and_a_fixed_size_needs_no_solving():
    fixed = build_model(cfg("TinyResNet", size_arg="channels", channels=6, num_classes=3), DATA)
    assert fixed.width == 6 and fixed.model.head.out_features == 3


def test_only_a_model_that_takes_parametrization_is_told_the_base_width():
    own = build_model(cfg("bottleneck", width=8, base_width=32, parametrization="mup"))
    assert own.model.in_features == 64  # its own default: scalinglab's base_width is not its
    told = build_model(cfg("adapts_to_mup", width=8, base_width=4, parametrization="mup"))
    assert told.model.told == ("mup", 4) and told.model.mup.width_mult == 2


def test_a_constructor_the_meta_device_cannot_run_is_counted_on_the_cpu():
    torch.manual_seed(3)
    solved = build_model(cfg("NeedsRealTensors", target_params=100), DATA)
    assert solved.width == 20 and solved.params == 100
    torch.manual_seed(3)  # the CPU candidates left the random state as it was
    assert torch.equal(solved.model.layer.weight, NeedsRealTensors(20).layer.weight)


@pytest.mark.parametrize("model_cfg, match", [
    (cfg("TinyResNet"), "model.size_arg='width': .*TinyResNet takes no argument 'width'"),
    (cfg("fixed_size", target_params=100), "model.width does not change the parameter count"),
    (cfg("TinyResNet", size_arg="channels", target_params=50),
     "model.target_params=50 is below the smallest model: .* at model.channels=1"),
    (cfg("not_a_module", width=3), "returned a dict, not an nn.Module"),
    (cfg("TinyResNet", size_arg="channels", channels=4, blocks="two"), "model: TypeError"),
    (cfg("TinyResNet", size_arg="channels"), "model.channels or model.target_params must be set"),
    ({"family": "x", "width": 3}, "model._target_ must name a callable"),
    (cfg("Nowhere", width=3), "model._target_=.*Nowhere.* cannot be imported"),
    ({"_target_": "no_such_package.Model", "width": 3}, "no_such_package.Model.* cannot be"),
])
def test_a_bad_model_config_is_one_config_error(model_cfg, match):
    with pytest.raises(ConfigError, match=match):
        build_model(model_cfg, DATA)


def test_solve_size_takes_the_closest_count():
    assert solve_size(lambda s: 10 * s, 1234, "width") == 123
    assert solve_size(lambda s: s * s, 50, "width") == 7  # 49 is closer than 64
