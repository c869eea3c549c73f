"""MNIST, Fashion-MNIST and CIFAR-10: torchvision's real loading code on small files written
here in the real on-disk formats (IDX files; CIFAR-10's python pickle batches). Nothing
downloads. These need the `vision` extra; CI runs them in a separate step with the torch and
torchvision pair that works here. The on-device augmentation needs only torch."""

import json
import logging
import pickle
import struct
import sys

import numpy as np
import pytest
import torch

from scalinglab import ConfigError, exits
from scalinglab.data.vision import SPECS, random_crop, random_flip
from tests.helpers import run, run_cli

RNG = np.random.default_rng(0)


def write_idx(path, array: np.ndarray) -> None:
    """An IDX file: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root, folder: str, n_train: int = 64, n_test: int = 16) -> dict:
    raw, arrays = root / folder / "raw", {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        arrays[split] = (images, labels)
    return arrays


def write_cifar10(root, per_batch: int = 12, n_test: int = 10) -> dict:
    """data_batch_1..5, test_batch and batches.meta: pickled dicts, rows of 3072 bytes (the
    1024 red, then green, then blue pixels of a 32x32 image)."""
    folder, arrays = root / "cifar-10-batches-py", {}
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(RNG.integers(0, 10, n))
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        arrays[name] = (data, labels)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))
    return arrays


def vision(dataset: str, root, **kwargs):
    from scalinglab.data import VisionData

    dm = VisionData(dataset, root=str(root), download=False, data_dir=str(root),
                    batch_size=8, **kwargs)
    dm.setup()
    return dm


@pytest.fixture
def torchvision():
    return pytest.importorskip("torchvision", reason="the vision extra is not installed")


@pytest.fixture
def cifar_files_trusted(torchvision, monkeypatch):
    # torchvision checks CIFAR-10's files against the md5 sums of the real ones, which files
    # written here cannot match; only that check is replaced, the parsing is torchvision's.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST"),
                                            ("fashion_mnist", "FashionMNIST")])
def test_idx_files_load_as_device_images(torchvision, tmp_path, dataset, folder):
    arrays = write_mnist(tmp_path, folder)
    dm = vision(dataset, tmp_path)
    assert dm.input_shape == (1, 28, 28) and dm.train_pool == 60000
    assert dm.x_train.dtype == torch.uint8 and dm.x_train.shape == (64, 1, 28, 28)
    assert torch.equal(dm.x_train[:, 0], torch.from_numpy(arrays["train"][0]))
    assert torch.equal(dm.y_val, torch.from_numpy(arrays["t10k"][1]).long())
    # evaluation batches: the same images, normalised with the dataset's statistics
    (x, y), = list(dm.val_dataloader()[0])
    spec = SPECS[dataset]
    expected = (torch.from_numpy(arrays["t10k"][0]).float()[:, None] / 255 - spec.mean[0])
    assert torch.allclose(x, expected / spec.std[0]) and torch.equal(y, dm.y_val)


def test_cifar10_pickles_load_channel_first(cifar_files_trusted, tmp_path):
    arrays = write_cifar10(tmp_path)
    dm = vision("cifar10", tmp_path)
    assert dm.x_train.shape == (60, 3, 32, 32) and dm.x_val.shape == (10, 3, 32, 32)
    data, labels = arrays["data_batch_1"]
    first = torch.from_numpy(data[0].reshape(3, 32, 32))  # row-major R, G, B planes
    assert torch.equal(dm.x_train[0], first) and dm.y_train[0] == labels[0]
    assert torch.equal(dm.y_val, torch.tensor(arrays["test_batch"][1]))


def test_cifar10_augments_training_batches_only(cifar_files_trusted, tmp_path):
    write_cifar10(tmp_path)

    def unaugmented(dm, x) -> list[bool]:
        plain = dm.eval_transform(dm.x_train)
        return [any(torch.equal(xi, p) for p in plain) for xi in x]

    torch.manual_seed(0)
    dm = vision("cifar10", tmp_path, crop_padding=4, flip=True)  # the config's defaults
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert not all(unaugmented(dm, x))  # cropped and flipped images are new images
    (x_val, _), = list(dm.val_dataloader()[0])
    assert torch.equal(x_val, dm.eval_transform(dm.x_val))  # evaluation: never augmented
    plain = vision("cifar10", tmp_path, crop_padding=0, flip=False)
    assert all(unaugmented(plain, next(iter(plain.train_dataloader()))[0]))


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST")])
def test_train_size_subsets_are_nested(torchvision, tmp_path, dataset, folder):
    write_mnist(tmp_path, folder)
    small = vision(dataset, tmp_path, train_size=16).x_train
    large = vision(dataset, tmp_path, train_size=48).x_train
    assert torch.equal(small, large[:16])


def test_absent_data_says_where_it_looked(torchvision, tmp_path):
    with pytest.raises(ConfigError, match=f"mnist not found in {tmp_path}/MNIST/raw.*"
                                          "data.download=true"):
        vision("mnist", tmp_path)


def test_trains_on_mnist_files_from_the_cli(torchvision, tmp_path, cli_env):
    write_mnist(tmp_path / "data", "MNIST", n_train=320, n_test=64)
    run = tmp_path / "run"
    result = run_cli(["scalinglab-train", "data=mnist", f"data.root={tmp_path / 'data'}",
                      "data.download=false", "data.val_from_train=64", "model=cnn",
                      "model.width=8",
                      "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                      f"hydra.run.dir={run}"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["train_size"] == 256
    assert record["flops_per_example"] > 0 and record["steps"] == 256 // 128
    assert record["test_loss"] is not None  # the 64 test images, once, on the final weights


def test_without_torchvision_the_error_names_the_extra(make_cfg, caplog):
    if "torchvision" in sys.modules or _importable("torchvision"):
        pytest.skip("torchvision is installed here")
    with caplog.at_level(logging.INFO, logger="scalinglab"), pytest.raises(SystemExit) as stop:
        run(make_cfg("data=cifar10"))
    assert stop.value.code == exits.CONFIG
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "pip install -e '.[vision]'" in errors[0]


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).view(2, 3, 6, 6)
    torch.manual_seed(1)
    out = random_crop(x, padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not torch.equal(random_crop(x.repeat(8, 1, 1, 1), 2), x.repeat(8, 1, 1, 1))


def test_random_flip_mirrors_about_half_the_images():
    x = torch.rand(400, 1, 4, 4)
    out = random_flip(x)
    flipped = torch.tensor([torch.equal(o, xi.flip(2)) for o, xi in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
    assert bool((flipped | kept).all()) and 150 < int(flipped.sum()) < 250
