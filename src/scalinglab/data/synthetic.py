"""A teacher-student task: a fixed random teacher network labels Gaussian inputs, with its
argmax (`task=classification`) or with its `outputs` values plus Gaussian noise
(`task=regression`, for `module=regressor`).

Samples are unlimited, so `train_size` is the data axis with no ceiling; the teacher depends only
on `teacher_seed`, the sampled inputs on `seed`. Validation is `val_size` fresh examples; the
test split, measured once on the final weights, is `test_size` more from a stream of their own.
"""

import torch

from scalinglab import ConfigError, check_number
from scalinglab.data.cache import cached_arrays
from scalinglab.data.tensors import TensorDataModule

CHUNK = 4096
TEST_STREAM = 500_000  # the test split's chunks are seeded past any training set's
TASKS = ("classification", "regression")


class Synthetic(TensorDataModule):
    name = "synthetic"
    train_pool = None

    def __init__(self, input_dim: int = 32, num_classes: int = 10, teacher_width: int = 64,
                 val_size: int = 2000, test_size: int = 2000, teacher_seed: int = 0, seed: int = 1,
                 label_noise: float = 0.0, train_size: int = 10000,
                 task: str = "classification", outputs: int = 1, noise: float = 0.0,
                 **kwargs) -> None:
        if task not in TASKS:
            raise ConfigError(f"data.task must be one of {', '.join(TASKS)}, got {task!r}")
        input_dim, teacher_width, val_size, test_size = (
            check_number(f"data.{key}", value, low=1, integer=True) for key, value in
            (("input_dim", input_dim), ("teacher_width", teacher_width), ("val_size", val_size),
             ("test_size", test_size)))
        if task == "regression":  # the teacher's values: `outputs` of them, noise added
            num_classes = check_number("data.outputs", outputs, low=1, integer=True)
            label_noise = check_number("data.noise", noise, low=0)
        else:
            num_classes = check_number("data.num_classes", num_classes, low=2, integer=True)
            label_noise = check_number("data.label_noise", label_noise, 0, 1)
        if train_size is None:
            raise ConfigError("data.train_size must be set for data=synthetic "
                              "(its samples are unlimited)")
        self.task, self.input_shape = task, (input_dim,)
        if task == "classification":
            self.num_classes = num_classes
        self.args = {"input_dim": input_dim, "num_classes": num_classes,
                     "teacher_width": teacher_width, "teacher_seed": teacher_seed, "seed": seed,
                     "label_noise": label_noise, "n": train_size + val_size}
        if task == "regression":  # classification keeps the cache key it always had
            self.args["task"] = task
        self.val_size, self.test_size = val_size, test_size
        super().__init__(train_size=train_size, **kwargs)
        self.info["validation"] = f"{val_size} fresh examples (data.val_size)"

    def _make(self, a: dict, first_chunk: int = 0) -> dict:
        g = torch.Generator().manual_seed(a["teacher_seed"])
        d, h, c = a["input_dim"], a["teacher_width"], a["num_classes"]
        w1 = torch.randn(d, h, generator=g) / d**0.5
        w2 = torch.randn(h, c, generator=g) / h**0.5
        # Inputs come in fixed-size chunks, each seeded by (seed, chunk), so a larger dataset
        # extends a smaller one: nested train sizes share their first examples.
        chunks = []
        for i in range(-(-a["n"] // CHUNK)):
            g = torch.Generator().manual_seed(a["seed"] * 1_000_003 + first_chunk + i)
            xc = torch.randn(CHUNK, a["input_dim"], generator=g)
            out = torch.tanh(xc @ w1) @ w2
            if a.get("task") == "regression":
                yc = out + a["label_noise"] * torch.randn(out.shape, generator=g)
            else:
                yc = out.argmax(1)
                flip = torch.rand(CHUNK, generator=g) < a["label_noise"]
                yc[flip] = torch.randint(a["num_classes"], (int(flip.sum()),), generator=g)
            chunks.append((xc, yc))
        x = torch.cat([c[0] for c in chunks])[: a["n"]]
        y = torch.cat([c[1] for c in chunks])[: a["n"]]
        return {"x": x.numpy(), "y": y.numpy()}

    @property
    def num_outputs(self) -> int:
        return self.args["num_classes"]  # classes, or regression outputs

    def load(self):
        test_args = {**self.args, "n": self.test_size, "split": "test"}
        d = cached_arrays(self.data_dir, self.name, self.args, lambda: self._make(self.args))
        t = cached_arrays(self.data_dir, self.name, test_args,
                          lambda: self._make(test_args, first_chunk=TEST_STREAM))
        dtype = torch.float32 if self.task == "regression" else torch.long
        x, y = torch.as_tensor(d["x"]), torch.as_tensor(d["y"], dtype=dtype)
        v = self.val_size
        return (x[v:], y[v:], x[:v], y[:v],
                torch.as_tensor(t["x"]), torch.as_tensor(t["y"], dtype=dtype))
