"""`data=image_folder data.root=DIR`: images in one folder per class (torchvision's
`ImageFolder`: DIR/cat/1.png, DIR/dog/2.jpg, ...), resized and normalised, served by plain
`DataLoader`s with workers. The datamodule for data that does not fit in memory, and an example
of the datamodules scalinglab takes: nothing here is special-cased anywhere else.

Validation follows the built-in datasets' rule: `val_from_train=N` validates on N images held
out of DIR (seeded, never trained on) and measures `val_root` once at the end as the test
split; without it, `val_root` validates. The batch size is global, split across DDP ranks.
"""

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Subset

from scalinglab import ConfigError, check_number
from scalinglab.data.tensors import VAL_SEED, per_rank_batch


def to_rgb(image):
    """Any image as 3 channels (a module-level function: DataLoader workers pickle it)."""
    return image.convert("RGB")


class ImageFolderData(pl.LightningDataModule):
    name = "image_folder"

    def __init__(self, root: str | None = None, val_root: str | None = None,
                 val_from_train: int | None = None, image_size: int = 32, channels: int = 3,
                 mean: float = 0.5, std: float = 0.5, batch_size: int = 128,
                 eval_batch_size: int = 512, train_size: int | None = None,
                 subset_seed: int = 0, num_workers: int = 2, pin_memory: bool = True) -> None:
        super().__init__()
        try:
            from torchvision import datasets, transforms
            from torchvision.datasets.folder import find_classes
        except ImportError:
            raise ConfigError("data=image_folder needs torchvision: pip install -e '.[vision]'"
                              ) from None
        if not root:
            raise ConfigError("data.root must name a folder of class folders (data=image_folder)")
        self.root = Path(root)
        self.val_root = Path(val_root) if val_root else None
        for key, path in (("data.root", self.root), ("data.val_root", self.val_root)):
            if path is not None and not path.is_dir():
                raise ConfigError(f"{key}={path} is not a directory of class folders")
        if val_from_train is None and self.val_root is None:
            raise ConfigError("data=image_folder validates on data.val_root or on "
                              "data.val_from_train=N images held out of data.root: set one")
        self.val_from_train = (None if val_from_train is None else
                               check_number("data.val_from_train", val_from_train, low=1,
                                            integer=True))
        self.batch_size = check_number("data.batch_size", batch_size, low=1, integer=True)
        self.eval_batch_size = check_number("data.eval_batch_size", eval_batch_size, low=1,
                                            integer=True)
        self.train_size = (None if train_size is None else
                           check_number("data.train_size", train_size, low=1, integer=True))
        size = check_number("data.image_size", image_size, low=1, integer=True)
        channels = check_number("data.channels", channels, integer=True)
        if channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 or 3, got {channels}")
        self.subset_seed, self.num_workers, self.pin_memory = subset_seed, num_workers, pin_memory
        self.transform = transforms.Compose([
            transforms.Grayscale(1) if channels == 1 else transforms.Lambda(to_rgb),
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize([mean] * channels, [std] * channels)])
        self.folder = datasets.ImageFolder
        try:
            classes, _ = find_classes(str(self.root))
        except FileNotFoundError as e:
            raise ConfigError(f"data.root={self.root}: {e}") from None
        self.input_shape, self.num_classes = (channels, size, size), len(classes)
        self.train = self.val = self.test = None
        self.info = {"validation": (f"{self.val_from_train} images held out of data.root "
                                    f"(seed {VAL_SEED})" if self.val_from_train else
                                    f"data.val_root={self.val_root}")}

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    @property
    def has_test_split(self) -> bool:
        return self.val_from_train is not None and self.val_root is not None

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        try:
            pool = self.folder(str(self.root), transform=self.transform)
        except (FileNotFoundError, RuntimeError) as e:  # e.g. no image files in a class folder
            raise ConfigError(f"data.root={self.root}: {e}") from None
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(VAL_SEED))
        held = self.val_from_train or 0
        if held >= len(pool):
            raise ConfigError(f"data.val_from_train={held} leaves none of the {len(pool)} "
                              f"images in {self.root} to train on")
        train = order[held:]
        if self.train_size is not None:
            if self.train_size > len(train):
                raise ConfigError(f"data.train_size={self.train_size} is larger than the "
                                  f"{len(train)} training images in {self.root}")
            g = torch.Generator().manual_seed(self.subset_seed)  # nested, whatever the seed
            train = train[torch.randperm(len(train), generator=g)[: self.train_size]]
        self.train = Subset(pool, train.tolist())
        outside = None if self.val_root is None else self.folder(str(self.val_root),
                                                                 transform=self.transform)
        if self.val_from_train:
            self.val, self.test = Subset(pool, order[:held].tolist()), outside
        else:
            self.val = outside
            rank_zero_warn(f"data=image_folder validates on data.val_root={self.val_root}, "
                           "which then scores the final weights too: data.val_from_train=N "
                           "validates on N images of data.root and keeps it as the test split")
        if outside is not None and outside.classes != pool.classes:
            raise ConfigError(f"data.val_root={self.val_root} has classes {outside.classes}, "
                              f"data.root has {pool.classes}")

    def _loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        # training drops an epoch's last partial batch: every step is a whole global batch,
        # which the record's examples seen count
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        world = self.trainer.world_size if self.trainer else 1
        return self._loader(self.train, per_rank_batch(self.batch_size, world), shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        # held-out images, and as many training images evaluated the same way (the train-val
        # gap compares like with like)
        n = min(len(self.train), len(self.val))
        return [self._loader(self.val, self.eval_batch_size, shuffle=False),
                self._loader(Subset(self.train, range(n)), self.eval_batch_size, shuffle=False)]

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test, self.eval_batch_size, shuffle=False)
