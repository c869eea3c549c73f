"""scalinglab: neural scaling-law studies with PyTorch Lightning and Hydra."""

from pathlib import Path

__version__ = "0.1.0"
CONF_DIR = str(Path(__file__).parent / "conf")  # the Hydra configs, shipped in the package


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key. Raised before training."""
