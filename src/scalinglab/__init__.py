"""scalinglab: neural scaling-law studies with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key. Raised before training."""
