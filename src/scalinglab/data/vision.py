"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's dataset classes (download and
parsing; the optional `vision` extra), then device-resident like every dataset here.

Images stay uint8 on the device (CIFAR-10's 50k training images: 150 MB) and become
normalised floats one batch at a time. CIFAR-10's augmentation (random crop with padding,
horizontal flip) runs there too, on whole training batches; evaluation never augments.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from scalinglab import ConfigError
from scalinglab.data.tensors import TensorDataModule


@dataclass(frozen=True)
class Spec:
    torchvision_class: str
    folder: str  # where torchvision keeps the files under data.root
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]  # per channel, of the training images scaled to [0, 1]
    std: tuple[float, ...]
    train_pool: int


SPECS = {
    "mnist": Spec("MNIST", "MNIST/raw", (1, 28, 28), (0.1307,), (0.3081,), 60000),
    "fashion_mnist": Spec("FashionMNIST", "FashionMNIST/raw", (1, 28, 28), (0.2860,),
                          (0.3530,), 60000),
    "cifar10": Spec("CIFAR10", "cifar-10-batches-py", (3, 32, 32), (0.4914, 0.4822, 0.4465),
                    (0.2470, 0.2435, 0.2616), 50000),
}


def random_crop(x: Tensor, padding: int) -> Tensor:
    """Each image of a (B, C, H, W) batch cropped at its own random offset after zero padding."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4).flatten(2)  # (B, C, (H+2p)(W+2p))
    dy, dx = torch.randint(0, 2 * padding + 1, (2, b, 1, 1), device=x.device)
    rows = dy + torch.arange(h, device=x.device).view(1, h, 1)
    cols = dx + torch.arange(w, device=x.device).view(1, 1, w)
    index = (rows * (w + 2 * padding) + cols).view(b, 1, h * w).expand(b, c, h * w)
    return padded.gather(2, index).view(b, c, h, w)


def random_flip(x: Tensor) -> Tensor:
    """Each image of a batch mirrored left-right with probability 1/2."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


class VisionData(TensorDataModule):
    """`data=mnist`, `data=fashion_mnist` or `data=cifar10`."""

    def __init__(self, dataset: str, root: str | None = None, download: bool = True,
                 crop_padding: int = 0, flip: bool = False, **kwargs) -> None:
        if dataset not in SPECS:
            raise ConfigError(f"data.dataset must be one of {sorted(SPECS)}, got {dataset!r}")
        try:
            import torchvision  # noqa: F401
        except ImportError:
            raise ConfigError(f"data={dataset} needs torchvision: pip install -e '.[vision]'"
                              ) from None
        if crop_padding < 0:
            raise ConfigError(f"data.crop_padding must be >= 0, got {crop_padding}")
        spec = SPECS[dataset]
        self.name, self.spec = dataset, spec
        self.input_shape, self.num_classes, self.train_pool = spec.input_shape, 10, spec.train_pool
        self.download, self.crop_padding, self.flip = download, crop_padding, flip
        super().__init__(**kwargs)
        self.root = Path(root or self.data_dir)
        self._stats: tuple[Tensor, Tensor] | None = None

    def _read(self, train: bool):
        import torchvision

        cls = getattr(torchvision.datasets, self.spec.torchvision_class)
        where = self.root / self.spec.folder
        try:
            return cls(str(self.root), train=train, download=self.download)
        except (RuntimeError, OSError) as e:  # not found, corrupted, or the download failed
            how = ("the download failed; fetch it where there is a network (the same command "
                   f"with data.download=true), then copy {where}" if self.download else
                   "set data.download=true to fetch it")
            raise ConfigError(f"{self.name} not found in {where} ({e}); {how}") from None

    def load(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = []
        for train in (True, False):
            d = self._read(train)
            x = torch.as_tensor(d.data)
            # MNIST-style: (N, H, W) uint8; CIFAR-10: (N, H, W, C) uint8 -> channel-first
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
            out += [x, torch.as_tensor(d.targets, dtype=torch.long)]
        return tuple(out)

    def eval_transform(self, x: Tensor) -> Tensor:
        """Scale to [0, 1] and normalise with the dataset's per-channel mean and std."""
        if self._stats is None or self._stats[0].device != x.device:
            self._stats = tuple(torch.tensor(v, device=x.device).view(1, -1, 1, 1)
                                for v in (self.spec.mean, self.spec.std))
        mean, std = self._stats
        return (x.float() / 255 - mean) / std

    def train_transform(self, x: Tensor) -> Tensor:
        """Augment (when configured), then normalise as for evaluation."""
        if self.crop_padding:
            x = random_crop(x, self.crop_padding)
        if self.flip:
            x = random_flip(x)
        return self.eval_transform(x)
