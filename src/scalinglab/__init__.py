"""scalinglab: neural scaling-law studies with PyTorch Lightning and Hydra."""

import math
from pathlib import Path

__version__ = "0.1.0"
CONF_DIR = str(Path(__file__).parent / "conf")  # the Hydra configs, shipped in the package


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key. Raised before training."""


def check_number(key: str, value, low: float | None = None, high: float | None = None,
                 integer: bool = False, low_open: bool = False,
                 high_open: bool = False) -> float | int:
    """`value` as a number (an int with `integer`) in its range, or a ConfigError naming `key`."""
    kind = "an integer" if integer else "a number"
    try:
        number = float(value)
        if integer and (isinstance(value, bool) or number != int(number)):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{key} must be {kind}, got {value!r}") from None
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above or math.isnan(number):
        if high is None:
            where = f"{'>' if low_open else '>='} {low:g}"
        elif low is None:
            where = f"{'<' if high_open else '<='} {high:g}"
        else:
            where = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{key} must be {where}, got {value!r}")
    return int(number) if integer else number
