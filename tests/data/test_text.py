"""data=text: byte-level next-token windows over any UTF-8 file, or the standard library's own
source by default; held-out contiguous blocks for validation and test; bad input as one line."""

import pytest
import torch

from scalinglab import ConfigError
from scalinglab.data import TextData


def text(**kwargs) -> TextData:
    dm = TextData(**kwargs)
    dm.setup()
    return dm


def test_windows_cover_the_training_text_once_with_next_bytes(tmp_path):
    body = bytes(range(256)) * 40  # 10240 bytes
    (tmp_path / "t.txt").write_bytes(body)
    dm = text(path=str(tmp_path / "t.txt"), context=16, held_out=0.2)
    held = int(0.2 * len(body))
    train = torch.tensor(list(body[: len(body) - held]))
    assert torch.equal(dm.x_train.flatten(), train[: dm.x_train.numel()])
    assert torch.equal(dm.y_train.flatten(), train[1: dm.x_train.numel() + 1])
    assert dm.x_train.shape[1] == 16 and dm.train_pool == (len(train) - 1) // 16
    # validation, then test: the corpus' end, contiguous, never trained on
    val = torch.tensor(list(body[len(body) - held: len(body) - held // 2]))
    test = torch.tensor(list(body[len(body) - held // 2:]))
    for x, y, block in ((dm.x_val, dm.y_val, val), (dm.x_test, dm.y_test, test)):
        assert len(x) == (len(block) - 1) // 16
        assert torch.equal(x.flatten(), block[: x.numel()])
        assert torch.equal(y.flatten(), block[1: x.numel() + 1])
    assert dm.has_test_split and dm.tokens_per_example == 16
    assert dm.info["bytes"] == len(body) and len(dm.info["sha256"]) == 16


def test_the_default_corpus_is_the_standard_library_and_fixed():
    a, b = TextData(max_bytes=200_000), TextData(max_bytes=200_000)
    assert a.info == b.info and a.info["bytes"] == 200_000
    assert a.info["source"].endswith("stdlib")
    a.setup()
    assert a.num_outputs == 256 and a.input_shape == (64,)


@pytest.mark.parametrize("make, match", [
    (lambda p: {"path": str(p / "nowhere.txt")}, "data.path=.*nowhere.txt is not a file"),
    (lambda p: {"path": str(p / "empty.txt")}, "the text is empty"),
    (lambda p: {"path": str(p / "short.txt"), "context": 64},
     "data.context=64 is longer than the corpus' held-out blocks"),
    (lambda p: {"val_from_train": 100}, "data.val_from_train: data=text holds out its own"),
])
def test_bad_text_input_is_a_config_error(tmp_path, make, match):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "short.txt").write_bytes(b"x" * 2000)
    with pytest.raises(ConfigError, match=match):
        TextData(**make(tmp_path))
