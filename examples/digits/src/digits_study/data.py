"""scikit-learn's digits (1,797 8x8 images, 10 classes; bundled, no download) as a plain
LightningDataModule: the last 297 images are the test split, and `val_size` of the rest,
chosen once, validate; the others train."""

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

TEST = 297


class Digits(pl.LightningDataModule):
    num_classes = 10
    input_shape = (1, 8, 8)

    def __init__(self, batch_size: int = 64, val_size: int = 300, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size, self.val_size, self.num_workers = batch_size, val_size, num_workers

    def setup(self, stage: str | None = None) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
        y = torch.tensor(digits.target)
        order = torch.randperm(len(x) - TEST, generator=torch.Generator().manual_seed(0))
        val, train = order[: self.val_size], order[self.val_size:]
        self.train = TensorDataset(x[train], y[train])
        self.val = TensorDataset(x[val], y[val])
        self.test = TensorDataset(x[-TEST:], y[-TEST:])

    def _loader(self, data: TensorDataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        # held-out images, then as many training images: scalinglab's train-val gap
        return [self._loader(self.val), self._loader(TensorDataset(*self.train[: self.val_size]))]

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test)
