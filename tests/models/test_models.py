import math

import pandas as pd
import pytest
import torch
from torch import nn

from scalinglab import ConfigError
from scalinglab.measure import forward_flops_per_example
from scalinglab.models import CNN, MLP, build_model, count_params
from tests.helpers import run_cli

MNIST1D = (1, 40)
IMAGE = (3, 32, 32)


def built(family: str, depth: int, shape=MNIST1D, classes: int = 10, **kw):
    """A built-in family as its config builds it (models/factory.py), on data of `shape`."""
    cfg = {"_target_": f"scalinglab.models.{family.upper()}", "family": family, "depth": depth,
           **kw}
    data = {"input_shape": shape, "num_classes": classes, "num_outputs": classes}
    return build_model(cfg, data)


def flops(model: nn.Module, shape) -> int:
    return forward_flops_per_example(model, torch.zeros(1, *shape))


def mlp_formula(d_in: int, classes: int, depth: int, width: int) -> int:
    # first layer + (depth-1) hidden-to-hidden layers + head, each weights + biases
    return d_in * width + width + (depth - 1) * (width * width + width) + width * classes + classes


def cnn_formula(c_in: int, k: int, dims: int, classes: int, depth: int, width: int) -> int:
    """With global pooling (model.pool=avg): the head sees `width` features."""
    taps = k**dims
    return (c_in * taps * width + width) + (depth - 1) * (width * taps * width + width) \
        + width * classes + classes


@pytest.mark.parametrize("depth,width", [(1, 1), (1, 7), (2, 64), (4, 33), (6, 128)])
def test_mlp_params_exact(depth, width):
    assert count_params(MLP(MNIST1D, 10, depth, width)) == mlp_formula(40, 10, depth, width)


@pytest.mark.parametrize("depth,width", [(1, 1), (2, 8), (3, 25), (5, 64)])
def test_cnn_1d_params_exact(depth, width):
    model = CNN(MNIST1D, 10, depth, width, pool="avg")
    assert count_params(model) == cnn_formula(1, 5, 1, 10, depth, width)


@pytest.mark.parametrize("depth,width", [(1, 4), (3, 16), (4, 32)])
def test_cnn_2d_params_exact_and_runs(depth, width):
    model = CNN(IMAGE, 10, depth, width, pool="avg")
    assert count_params(model) == cnn_formula(3, 3, 2, 10, depth, width)
    assert model(torch.randn(2, *IMAGE)).shape == (2, 10)


def test_cnn_picks_1d_or_2d_from_input_shape():
    one_d, two_d = CNN(MNIST1D, 10, 2, 4), CNN((1, 28, 28), 10, 2, 4)
    assert isinstance(one_d.net[0], torch.nn.Conv1d)
    assert isinstance(two_d.net[0], torch.nn.Conv2d)


@pytest.mark.parametrize("family,depth", [("mlp", 1), ("mlp", 3), ("cnn", 2), ("cnn", 4)])
@pytest.mark.parametrize("target", [1_000, 20_000, 300_000])
def test_target_params_solves_closest_width(family, depth, target):
    pool = {} if family == "mlp" else {"pool": "avg"}
    solved = built(family, depth, target_params=target, **pool)
    w = solved.width
    # no other width comes closer to the target
    for other in (w - 1, w + 1):
        if other >= 1:
            neighbour = built(family, depth, width=other, **pool).params
            assert abs(solved.params - target) <= abs(neighbour - target)
    # the closed form agrees with what the solver counted (on the meta device)
    formula = (mlp_formula(40, 10, depth, w) if family == "mlp" else
               cnn_formula(1, 5, 1, 10, depth, w))
    assert solved.params == formula


def test_flops_grow_with_width_and_depth():
    def count(family, depth, width):
        return flops(built(family, depth, width=width).model, MNIST1D)

    for family in ("mlp", "cnn"):
        assert count(family, 2, 16) < count(family, 2, 32) < count(family, 2, 64)
        assert count(family, 1, 32) < count(family, 2, 32) < count(family, 4, 32)


def test_mlp_flops_are_two_per_weight_per_example_of_a_real_batch():
    model = MLP(MNIST1D, 10, 3, 50)
    weights = sum(p.numel() for p in model.parameters() if p.ndim == 2)
    batch = torch.randn(64, *MNIST1D)  # one example of it is counted
    assert forward_flops_per_example(model, batch) == 2 * weights


def test_cnn_flops_exceed_two_per_param():
    # a conv reuses each weight at every position, so 6ND-style 2N undercounts
    for shape in (MNIST1D, IMAGE):
        model = CNN(shape, 10, 3, 32)
        assert flops(model, shape) > 2 * count_params(model)


@pytest.mark.parametrize("family,kwargs,key", [
    ("mlp", {"depth": -1}, "model.depth"),
    ("cnn", {"depth": 0}, "model.depth"),
    ("cnn", {"pool": "mean"}, "model.pool"),
    ("cnn", {"kernel_size": [5, 3, 3], "depth": 2}, "model.kernel_size"),
    ("cnn", {"padding": -1}, "model.padding"),
    ("cnn", {"padding": 0, "kernel_size": 41}, "model.kernel_size"),
    ("mlp", {"width": 0}, "model.width"),
    ("mlp", {"activation": "swish2"}, "model.activation"),
    ("mlp", {"dropout": 1.5}, "model.dropout"),
    ("mlp", {"target_params": -5}, "model.target_params"),
    ("mlp", {"target_params": 10}, "model.target_params=10 is below the smallest model"),
    ("mlp", {"wdith": 8}, "unexpected keyword argument 'wdith'"),
])
def test_bad_model_values_name_the_key(family, kwargs, key):
    args = {"depth": 2, "width": 8, **kwargs}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        built(family, **args)


def test_deep_cnn_on_short_signal_stays_valid():
    model = CNN(MNIST1D, 10, 8, 4)
    assert model(torch.randn(3, *MNIST1D)).shape == (3, 10)
    assert math.isfinite(model(torch.randn(3, *MNIST1D)).sum().item())


def cnn_2d_flops(shape: tuple[int, int, int], depth: int, width: int, classes: int = 10) -> int:
    """Closed form: 2 x multiply-adds of each 3x3 conv (stride 2 while the side exceeds 4,
    padding 1) and of the head; torch's counter does not count biases or activations."""
    channels, side = shape[0], shape[1]
    flops = 0
    for _ in range(depth):
        stride = 2 if side > 4 else 1
        side = (side + 2 - 3) // stride + 1
        flops += 2 * channels * width * 9 * side * side
        channels = width
    return flops + 2 * width * classes


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("depth,width", [(1, 8), (3, 16), (5, 32)])
def test_cnn_2d_flops_exact(shape, depth, width):
    model = CNN(shape, 10, depth, width, pool="avg")
    assert flops(model, shape) == cnn_2d_flops(shape, depth, width)


def test_compile_compiles_in_place_and_keeps_the_checkpoint_keys_and_flops(make_cfg):
    from scalinglab.train.job import build

    eager = build(make_cfg("model=cnn", "model.width=8"))
    compiled = build(make_cfg("model=cnn", "model.width=8", "model.compile=true"))
    model = compiled.module.model
    assert type(model) is type(eager.module.model)  # the same module, compiled in place
    assert model._compiled_call_impl is not None and eager.module.model._compiled_call_impl is None
    # the same checkpoint keys, so compiled and eager runs resume each other
    assert list(compiled.module.state_dict()) == list(eager.module.state_dict())
    flops = compiled.recorder.size["flops_per_example"]
    assert flops == eager.recorder.size["flops_per_example"] > 0


def test_compile_and_placement_do_not_change_a_jobs_identity(make_cfg):
    from scalinglab.identity import identity

    base = identity(make_cfg())
    assert identity(make_cfg("model.compile=true", "data.placement=host")) == base
    assert identity(make_cfg("model.width=7")) != base


def test_the_mnist1d_papers_architectures():
    """Greydanus (2020): logistic regression, an MLP of 2 x 100, and a CNN of 3 x 25 channels
    (kernels 5, 3, 3, stride 2, padding 1: lengths 19, 10, 5) whose last 25 x 5 map is
    flattened into the head."""
    logistic, mlp = MLP(MNIST1D, 10, depth=0), MLP(MNIST1D, 10, 2, 100)
    cnn = CNN(MNIST1D, 10, 3, 25, kernel_size=[5, 3, 3], padding=1, pool="flatten")
    assert [count_params(m) for m in (logistic, mlp, cnn)] == [410, 15210, 5210]
    assert cnn.net[-1].in_features == 125
    lengths = [cnn.net[: i + 1](torch.randn(1, *MNIST1D)).shape[-1] for i in (0, 2, 4)]
    assert lengths == [19, 10, 5]
    for model in (logistic, mlp, cnn):
        assert model(torch.randn(2, *MNIST1D)).shape == (2, 10)


# The paper's table (Greydanus 2020, test accuracy %): logistic regression, MLP, CNN.
PAPER = {(0, "mlp"): 32, (2, "mlp"): 68, (3, "cnn"): 94}


@pytest.mark.slow
def test_the_mnist1d_paper_experiment_reproduces_its_table(tmp_path, cli_env):
    """experiment=mnist1d_paper as the README runs it: each model's mean test accuracy over
    3 seeds lands within 2 points of the paper's."""
    sweep = tmp_path / "sweep"
    out = run_cli(["scalinglab-train", "-m", "experiment=mnist1d_paper",
                   "hydra/launcher=local_parallel", f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = pd.read_csv(sweep / "runs.csv")
    assert len(runs) == 9 and set(runs["steps"]) == {6000}
    measured = (100 * runs.groupby(["depth", "family"])["val_acc"].mean()).to_dict()
    assert measured.keys() == PAPER.keys()
    for key, paper in PAPER.items():
        assert abs(measured[key] - paper) <= 2, (key, measured[key], paper)


@pytest.mark.parametrize("shape", [MNIST1D, (3, 32, 32), (1, 28, 20)])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_flatten_head_sees_the_whole_last_map(shape, depth):
    model = CNN(shape, 10, depth, 8, pool="flatten")
    head = model.net[-1]
    maps = model.net[:-1](torch.randn(2, *shape))
    assert head.in_features == maps.shape[1] and model(torch.randn(2, *shape)).shape == (2, 10)
    solved = built("cnn", depth, shape, target_params=5000, pool="flatten")
    assert abs(solved.params - 5000) < 0.5 * 5000
