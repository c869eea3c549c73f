"""Datamodules: in-memory datasets kept on the device (tensors.py: MNIST-1D, synthetic, byte-level
text, torchvision's MNIST, Fashion-MNIST and CIFAR-10), and image folders served by DataLoaders
(image_folder.py). Any LightningDataModule of your own whose loaders yield (x, y) works too;
one that exposes `input_shape` and `num_classes` (or `num_outputs`) tells the model factory."""

from scalinglab.data.image_folder import ImageFolderData
from scalinglab.data.mnist1d import MNIST1D
from scalinglab.data.synthetic import Synthetic
from scalinglab.data.text import TextData
from scalinglab.data.vision import VisionData

__all__ = ["MNIST1D", "ImageFolderData", "Synthetic", "TextData", "VisionData"]
