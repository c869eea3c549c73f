"""data=image_folder: torchvision's ImageFolder over PNG files written here, one folder per
class, served by DataLoaders with workers: a single run and a -m sweep from the command line,
held-out validation and a test split, and its mistakes as one line. Needs the `vision` extra;
CI runs it in the step that installs it."""

import json

import numpy as np
import pytest

from tests.helpers import run_cli

CLASSES = ("circle", "square", "stripes")


def write_images(root, per_class: int, size: int = 12, seed: int = 0) -> None:
    """PNG files a small CNN can tell apart: each class its own pattern, plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    patterns = {"circle": ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2),
                "square": (abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4),
                "stripes": (xx // 2) % 2 == 0}
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = 200 * patterns[name] + rng.integers(0, 55, (3, size, size))
            Image.fromarray(pixels.transpose(1, 2, 0).astype(np.uint8)).save(
                root / name / f"{i}.png")


@pytest.fixture
def folders(tmp_path):
    pytest.importorskip("torchvision", reason="the vision extra is not installed")
    write_images(tmp_path / "train", per_class=40)
    write_images(tmp_path / "test", per_class=10, seed=1)
    return tmp_path


def train(folders, cli_env, *args, sweep: bool = False, batch: int = 30):
    return run_cli(["scalinglab-train", *(["-m"] if sweep else []), "data=image_folder",
                    f"data.root={folders / 'train'}",
                    "data.image_size=8", f"data.batch_size={batch}", "model=cnn", "model.width=4",
                    "trainer.max_epochs=2", *args], cli_env, folders)


def test_a_folder_of_images_trains_validates_and_tests(folders, cli_env):
    run = folders / "run"
    result = train(folders, cli_env, "data.val_from_train=30", f"data.val_root={folders / 'test'}",
                   f"hydra.run.dir={run}", batch=40)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["data"] == "image_folder"
    # 3 classes x 40 images, less 30 held out: 90 to train on, 2 whole batches of 40 an epoch
    assert record["train_size"] == 90 and record["steps"] == 2 * 2
    assert record["examples_seen"] == 4 * 40 and record["epochs"] == 2
    assert record["flops_per_example"] > 0
    assert record["val_loss"] is not None and record["test_loss"] is not None
    assert record["data_info"]["validation"] == "30 images held out of data.root (seed 0)"
    assert record["train_loss"] is not None  # the second val loader: the train-val gap
    # 3 convs of 4 channels (3x3), the first at stride 2 (8 -> 4), then the 4 x 4 x 4 map
    assert record["params"] == (3 * 9 + 1) * 4 + 2 * (4 * 9 + 1) * 4 + (4 * 4 * 4 + 1) * 3


def test_a_sweep_of_sizes_on_a_folder_with_two_workers(folders, cli_env):
    sweep = folders / "sweep"
    result = train(folders, cli_env, "model.width=2,6", f"data.val_root={folders / 'test'}",
                   "data.num_workers=2", f"hydra.sweep.dir={sweep}", sweep=True)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/run.json")]
    assert sorted(r["width"] for r in runs) == [2, 6]
    assert all(r["train_size"] == 120 and r["test_loss"] is None for r in runs)
    logs = "".join(p.read_text() for p in sweep.glob("*/train.log")) + result.stderr
    assert "validates on data.val_root" in logs  # nothing is held out as a test split: it says so


@pytest.mark.parametrize("args, message", [
    (["data.root=/nowhere"], "data.root=/nowhere is not a directory of class folders"),
    ([], "data=image_folder validates on data.val_root or on data.val_from_train"),
    (["data.val_from_train=500"], "data.val_from_train=500 leaves none of the 120 images"),
])
def test_mistakes_are_one_line_and_exit_2(folders, cli_env, args, message):
    result = train(folders, cli_env, *args)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-2000:]
    errors = [line for line in out.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message in errors[0], out[-2000:]
    assert "Traceback" not in out
