"""In-memory datamodules; each reports `input_shape` and `num_classes` so the models adapt."""

from scalinglab.data.mnist1d import MNIST1D
from scalinglab.data.synthetic import Synthetic
from scalinglab.data.vision import VisionData

__all__ = ["MNIST1D", "Synthetic", "VisionData"]
