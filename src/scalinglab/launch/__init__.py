"""Running jobs: DDP inside a multirun (ddp.py), packing jobs on one machine (slots.py), SLURM's
job shape (slurm.py), a grid's jobs (grid.py), the end of a sweep (summary.py)."""

from hydra.utils import get_class


def extends(target: str, base: type) -> bool:
    """Whether the class a config's `_target_` names is `base` or derives from it. Compared by
    import path: Hydra's plugin scan loads every plugin module anew, so a plugin class (a
    launcher) can exist twice and `issubclass` would say no."""
    name = f"{base.__module__}.{base.__qualname__}"
    return any(f"{c.__module__}.{c.__qualname__}" == name for c in get_class(target).__mro__)
