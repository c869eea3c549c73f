"""Generated datasets are cached as .npz files keyed by a hash of their arguments."""

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scalinglab.files import atomic_write


def cached_arrays(
    cache_dir: str | os.PathLike, name: str, args: dict, make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Load `name`'s arrays for `args` from `cache_dir`, generating and saving them once."""
    key = hashlib.sha1(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"{name}-{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    arrays = make()
    # Atomic: parallel jobs may race to write the same cache file; a reader never sees half of it.
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return arrays
