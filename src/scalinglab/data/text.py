"""`data=text`: next-token prediction over any UTF-8 text, byte-level (256 symbols, no tokenizer).

The corpus is `data.path`, or by default the Python standard library's own source files, which
every machine has without a download: found through `sysconfig`, read in a fixed (sorted) order
up to `data.max_bytes`. Its end, `data.held_out` of it, is held out in two contiguous blocks:
validation, then test (measured once at the end). Examples are windows of `data.context` bytes
and their next bytes, one after another: each byte of the training part is a target once. The
corpus' size and hash are in the record (`data_info`), since the standard library differs
between Python versions.
"""

import hashlib
import os
import sysconfig
from pathlib import Path

import torch
from torch import Tensor

from scalinglab import ConfigError, check_number
from scalinglab.data.tensors import TensorDataModule

VOCAB = 256  # bytes


def stdlib_files(root: Path) -> list[Path]:
    """The .py files under `root`, sorted by path, without site-packages (pruned, not walked:
    under pyenv or conda it holds thousands of files) or caches."""
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in ("site-packages", "__pycache__")]
        files += [Path(folder) / n for n in names if n.endswith(".py")]
    return sorted(files)


def stdlib_text(max_bytes: int) -> bytes:
    """The standard library's .py files (not site-packages), sorted by path, joined, capped."""
    parts, size = [], 0
    for path in stdlib_files(Path(sysconfig.get_paths()["stdlib"])):
        data = path.read_bytes()
        parts.append(data)
        size += len(data) + 1
        if size >= max_bytes:
            break
    return b"\n".join(parts)[:max_bytes]


def windows(block: Tensor, context: int) -> tuple[Tensor, Tensor]:
    """Inputs and next-byte targets: consecutive windows of `context` bytes."""
    n = (len(block) - 1) // context
    x = block[: n * context].view(n, context)
    y = block[1: n * context + 1].view(n, context)
    return x, y


class TextData(TensorDataModule):
    name = "text"
    num_classes = VOCAB
    train_pool = None  # set from the corpus

    def __init__(self, path: str | None = None, context: int = 64, held_out: float = 0.02,
                 max_bytes: int = 2_000_000, **kwargs) -> None:
        self.context = check_number("data.context", context, low=1, integer=True)
        held_out = check_number("data.held_out", held_out, 0, 1, low_open=True, high_open=True)
        max_bytes = check_number("data.max_bytes", max_bytes, low=1, integer=True)
        if kwargs.get("val_from_train") is not None:
            raise ConfigError("data.val_from_train: data=text holds out its own validation and "
                              "test blocks (data.held_out)")
        if path is None:
            text, source = stdlib_text(max_bytes), f"python {sysconfig.get_python_version()} stdlib"
        else:
            file = Path(path)
            if not file.is_file():
                raise ConfigError(f"data.path={path} is not a file")
            text, source = file.read_bytes()[:max_bytes], str(file)
        if not text:
            raise ConfigError(f"data.path={path}: the text is empty")
        corpus = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
        held = int(held_out * len(corpus))
        self.blocks = {"train": corpus[: len(corpus) - held],
                       "val": corpus[len(corpus) - held: len(corpus) - held // 2],
                       "test": corpus[len(corpus) - held // 2:]}
        shortest = min(len(b) for b in self.blocks.values()) - 1
        if shortest < self.context:
            raise ConfigError(f"data.context={self.context} is longer than the corpus' held-out "
                              f"blocks ({shortest} bytes of {len(corpus)}): lower data.context, "
                              "or raise data.held_out or the corpus")
        self.info = {"source": source, "bytes": len(text),
                     "sha256": hashlib.sha256(text).hexdigest()[:16]}
        self.input_shape = (self.context,)
        self.tokens_per_example = self.context  # next-byte targets a window has: tokens_seen
        self.train_pool = (len(self.blocks["train"]) - 1) // self.context
        super().__init__(**kwargs)

    def load(self) -> tuple[Tensor, ...]:
        return (*windows(self.blocks["train"], self.context),
                *windows(self.blocks["val"], self.context),
                *windows(self.blocks["test"], self.context))
