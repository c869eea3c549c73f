"""model.parametrization=sp|mup for any model with a width: roles inferred from shapes at two
sizes, the optimizer groups, the readout, and the coordinate check."""

import importlib.util

import pytest
import torch
from torch import nn

from scalinglab import ConfigError
from scalinglab.models import build_model, count_params
from scalinglab.models.parametrization import param_groups, roles
from tests.helpers import ROOT
from tests.models.test_factory import TinyResNet

DATA = {"input_shape": (1, 40), "num_classes": 10, "num_outputs": 10}


def model(family="mlp", width=128, **kw):
    cfg = {"_target_": f"scalinglab.models.{family.upper()}", "family": family, "depth": 3,
           "width": width, **kw}
    return build_model(cfg, DATA).model


def test_roles_come_from_the_shapes_at_two_sizes():
    mlp = roles(model(width=8), model(width=16))
    assert mlp == {"net.1.weight": "input", "net.1.bias": "vector",
                   "net.3.weight": "hidden", "net.3.bias": "vector",
                   "net.5.weight": "hidden", "net.5.bias": "vector",
                   "net.7.weight": "readout", "net.7.bias": "vector"}
    resnet = roles(TinyResNet(5, 8), TinyResNet(5, 16))
    assert resnet["stem.weight"] == "input" and resnet["head.weight"] == "readout"
    assert resnet["blocks.0.conv.weight"] == "hidden"
    assert resnet["blocks.0.norm.weight"] == "vector"


def test_an_embedding_is_an_input_whatever_its_shape_says():
    def lm(width: int) -> nn.Module:
        return nn.Sequential(nn.Embedding(256, width), nn.Linear(width, width),
                             nn.Linear(width, 256))

    assert list(roles(lm(8), lm(16)).values()) == ["input", "hidden", "vector", "readout",
                                                   "vector"]


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_mup_scales_the_hidden_lr_and_weight_decay_by_the_width(family):
    mup = model(family, width=128, parametrization="mup", base_width=32)
    groups = param_groups(mup, lr=0.01, weight_decay=0.1)
    assert groups[0]["lr"] == 0.01  # the logged group is at the base LR
    hidden = [g for g in groups if g["lr"] != 0.01]
    assert len(hidden) == 1 and hidden[0]["lr"] == pytest.approx(0.01 / 4)
    assert hidden[0]["weight_decay"] == pytest.approx(0.4)  # lr x wd is the same at any width
    assert len(hidden[0]["params"]) == 2  # the two width x width layers
    biases = [g for g in groups if g["weight_decay"] == 0]
    assert all(p.ndim == 1 for g in biases for p in g["params"])
    assert sum(p.numel() for g in groups for p in g["params"]) == count_params(mup)


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_mup_readout_starts_at_zero_and_scales_its_input(family):
    sp, mup = model(family), model(family, parametrization="mup", base_width=32)
    assert count_params(sp) == count_params(mup)  # the same architecture
    readout = mup.net[-1]
    assert not readout.weight.any() and not readout.bias.any()
    with torch.no_grad():
        readout.weight.fill_(1.0)
        x = torch.randn(2, 1, 40)
        features, logits = mup.net[:-1](x), mup(x)
    # the readout sees its input x 1/m (m = 128 / 32) ahead of its own weights
    assert torch.allclose(logits, features.sum(1, keepdim=True).expand(-1, 10) / 4, atol=1e-5)
    assert {g["lr"] for g in param_groups(sp, 0.01, 0.1)} == {0.01}  # SP: one LR


def test_a_users_model_gets_mup_by_the_same_rule():
    cfg = {"_target_": "tests.models.test_factory.TinyResNet", "size_arg": "channels",
           "channels": 64, "parametrization": "mup", "base_width": 16}
    mup = build_model(cfg, {"num_classes": 5}).model
    assert mup.mup.width_mult == 4 and not mup.head.weight.any()
    groups = param_groups(mup, 0.01, 0.1)
    hidden = [g for g in groups if g["lr"] == pytest.approx(0.01 / 4)]
    assert [p.shape for p in hidden[0]["params"]] == [(64, 64, 3, 3)] * 2


def test_at_the_base_width_mup_trains_at_one_lr():
    mup = model(width=32, parametrization="mup", base_width=32)
    assert {g["lr"] for g in param_groups(mup, 0.01, 0.1)} == {0.01}
    x = torch.randn(4, 1, 40)
    assert torch.equal(mup(x), mup(x)) and mup(x).abs().max() == 0  # zero readout, no bias


@pytest.mark.parametrize("kw, match", [
    ({"parametrization": "ntk"}, "model.parametrization='ntk' is unknown"),
    ({"parametrization": "mup", "base_width": 0}, "model.base_width must be >= 1"),
])
def test_bad_parametrization_values_are_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        model(**kw)


def test_the_coordinate_check_is_flat_under_mup_and_not_under_sp(data_dir):
    spec = importlib.util.spec_from_file_location("coord_check",
                                                  ROOT / "scripts" / "coord_check.py")
    coord = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(coord)
    result = coord.coord_check(["model.depth=3"], widths=(32, 64, 128, 256, 512, 1024),
                               seeds=(0, 1), data_dir=str(data_dir))
    assert list(result["mup"]["slopes"]) == ["input", "hidden0", "hidden1", "readout"]
    for layer, slope in result["mup"]["slopes"].items():
        assert abs(slope) <= 0.1, (layer, slope)
    assert result["sp"]["slopes"]["readout"] > 0.5  # SP's logits grow with the width
