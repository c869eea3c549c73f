"""Files written all or nothing. Every file the project writes goes through `atomic_write`, so
a reader (a resumed job, a sweep's summary, a fit) never sees half of one. Standard library only:
both the training side and the table side import it."""

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

# The process's umask, read once at import (reading it means setting it): a file written here
# gets the permissions any new file would, not mkstemp's owner-only 0600, so a study's records
# stay readable by the group that shares its directory.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None] | str | bytes) -> Path:
    """Write `path` all or nothing: a temp file in the same directory, fsync, rename. `write`
    is the text, the bytes, or a function that writes to the open binary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, "w" if isinstance(write, str) else "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _finite_or_none(value):
    """JSON has no NaN/inf: a diverged run's non-finite metrics are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(path: str | os.PathLike, doc) -> Path:
    """Strict JSON (non-finite numbers as null), written atomically."""
    return atomic_write(path, json.dumps(_finite_or_none(doc), indent=2, allow_nan=False,
                                         default=str))


def read_json(path: str | os.PathLike):
    with open(path) as f:
        return json.load(f)
