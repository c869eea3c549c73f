"""model=transformer: a decoder-only Transformer, sized like every family, its FLOPs counted with
the attention, and muP by the same role rule as the others."""

import math

import pytest
import torch

from scalinglab import ConfigError
from scalinglab.measure import forward_flops_per_example
from scalinglab.models import Transformer, build_model, count_params
from scalinglab.models.parametrization import roles

VOCAB, CONTEXT = 256, 16


def built(**kw):
    cfg = {"_target_": "scalinglab.models.Transformer", "family": "transformer", "depth": 2,
           "heads": 4, "size_multiple": 4, "context": CONTEXT, **kw}
    return build_model(cfg, {"num_outputs": VOCAB, "num_classes": VOCAB})


def formula(width: int, depth: int = 2, ratio: int = 4) -> int:
    embeddings = VOCAB * width + CONTEXT * width
    block = (2 * 2 * width                       # two LayerNorms
             + width * 3 * width + 3 * width      # q, k, v
             + width * width + width              # the attention's output
             + width * ratio * width + ratio * width + ratio * width * width + width)  # MLP
    return embeddings + depth * block + 2 * width + width * VOCAB + VOCAB


@pytest.mark.parametrize("width", [8, 32, 48])
def test_params_exact_and_without_embeddings(width):
    model = built(width=width)
    assert model.params == count_params(model.model) == formula(width)
    assert model.params_nonembedding == formula(width) - (VOCAB + CONTEXT) * width


def test_target_params_solves_a_width_the_heads_divide():
    model = built(target_params=100_000)
    assert model.width % 4 == 0 and abs(model.params - 100_000) < formula(model.width + 4) \
        - formula(model.width)
    for other in (model.width - 4, model.width + 4):
        assert abs(model.params - 100_000) <= abs(formula(other) - 100_000)


def test_heads_that_do_not_divide_the_width_are_a_config_error():
    with pytest.raises(ConfigError, match="model.heads=4 does not divide model.width=30"):
        built(width=30)


def test_flops_count_the_attention():
    width, t = 32, CONTEXT
    model = Transformer(VOCAB, CONTEXT, depth=2, width=width, heads=4)
    flops = forward_flops_per_example(model, torch.zeros(1, t, dtype=torch.long))
    matmuls = 2 * t * (2 * (3 * width * width + width * width + 8 * width * width)
                       + width * VOCAB)
    attention = 2 * 2 * (2 * t * t * width)  # q k^T and weights v, in each of 2 blocks
    assert flops == matmuls + attention


def test_it_is_causal():
    torch.manual_seed(0)
    model = Transformer(VOCAB, CONTEXT, depth=2, width=32, heads=4).eval()
    x = torch.randint(0, VOCAB, (1, CONTEXT))
    changed = x.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert torch.equal(a[0, :10], b[0, :10]) and not torch.equal(a[0, 10:], b[0, 10:])


def test_mup_roles_and_attention_scale():
    found = roles(Transformer(VOCAB, CONTEXT, width=32), Transformer(VOCAB, CONTEXT, width=64))
    assert found["tokens.weight"] == found["positions.weight"] == "input"
    assert found["blocks.0.qkv.weight"] == found["blocks.1.mlp.2.weight"] == "hidden"
    assert found["readout.weight"] == "readout" and found["norm.weight"] == "vector"
    sp = Transformer(VOCAB, CONTEXT, width=128, heads=4)
    mup = Transformer(VOCAB, CONTEXT, width=128, heads=4, parametrization="mup", base_width=32)
    base = Transformer(VOCAB, CONTEXT, width=32, heads=4, parametrization="mup", base_width=32)
    assert sp.blocks[0].scale == 1 / math.sqrt(32)             # 1/sqrt(d_head)
    assert mup.blocks[0].scale == pytest.approx(math.sqrt(8) / 32)  # 1/d_head, = sp at the base
    assert base.blocks[0].scale == pytest.approx(1 / math.sqrt(8))
    model = built(width=128, parametrization="mup", base_width=32).model
    assert model.mup.width_mult == 4 and not model.readout.weight.any()
