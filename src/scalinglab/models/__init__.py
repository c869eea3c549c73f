"""Models are plain `nn.Module`s: the MLP, CNN and Transformer families here, or any callable of
yours that returns one. factory.py builds one from `cfg.model`, sized by its size argument
(solved from `target_params`), in sp or mup (parametrization.py); Lightning lives in
module.py."""

from scalinglab.models.cnn import CNN
from scalinglab.models.factory import Built, build_model, count_params, data_args, solve_size
from scalinglab.models.mlp import MLP
from scalinglab.models.transformer import Transformer

__all__ = ["CNN", "MLP", "Built", "Transformer", "build_model", "count_params", "data_args",
           "solve_size"]
