"""model.parametrization=sp|mup: the optimizer groups, the readout, and the coordinate check."""

import importlib.util

import pytest
import torch

from scalinglab import ConfigError
from scalinglab.models import build_model, count_params
from scalinglab.models.parametrization import param_groups
from tests.helpers import ROOT


def model(family="mlp", width=128, **kw):
    shape = (1, 40)
    return build_model(family, depth=3, input_shape=shape, num_classes=10, width=width, **kw)


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
    readout = [m for m in mup.modules() if getattr(m, "role", None) == "readout"][0]
    assert readout.multiplier == 32 / 128 and not readout.weight.any() and not readout.bias.any()
    assert param_groups(sp, 0.01, 0.1)[0]["lr"] == 0.01
    assert {g["lr"] for g in param_groups(sp, 0.01, 0.1)} == {0.01}  # SP: one LR


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
    result = coord.coord_check("mlp", widths=(32, 64, 128, 256, 512, 1024), seeds=(0, 1),
                               data_dir=str(data_dir))
    for layer, slope in result["mup"]["slopes"].items():
        assert abs(slope) <= 0.1, (layer, slope)
    assert result["sp"]["slopes"]["readout"] > 0.5  # SP's logits grow with the width
