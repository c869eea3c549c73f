"""MNIST-1D (Greydanus 2020), generated offline and cached; the default dataset.

We call `make_dataset` and never `get_dataset`: the latter tries a download with no timeout and
pickles into the current directory.
"""

import torch

from scalinglab import check_number
from scalinglab.data.cache import cached_arrays
from scalinglab.data.tensors import TensorDataModule


class MNIST1D(TensorDataModule):
    name = "mnist1d"
    num_classes = 10

    def __init__(self, num_samples: int = 5000, train_split: float = 0.8, seed: int = 42,
                 length: int = 40, **kwargs) -> None:
        num_samples = check_number("data.num_samples", num_samples, low=10, integer=True)
        train_split = check_number("data.train_split", train_split, 0, 1, low_open=True,
                                   high_open=True)
        length = check_number("data.length", length, low=1, integer=True)
        self.args = {"num_samples": num_samples, "train_split": train_split, "seed": seed,
                     "final_seq_length": length}
        self.input_shape = (1, length)
        self.train_pool = int(num_samples * train_split)
        super().__init__(**kwargs)

    def _make(self) -> dict:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        for k, v in self.args.items():
            setattr(args, k, v)
        d = make_dataset(args)
        return {k: d[k] for k in ("x", "y", "x_test", "y_test")}

    def load(self):
        d = cached_arrays(self.data_dir, self.name, self.args, self._make)
        # (N, 40) signals -> (N, 1, 40): one channel, channel-first like every input here
        x, x_test = (torch.as_tensor(d[k], dtype=torch.float32).unsqueeze(1)
                     for k in ("x", "x_test"))
        y, y_test = (torch.as_tensor(d[k], dtype=torch.long) for k in ("y", "y_test"))
        return x, y, x_test, y_test
