"""The jobs a grid sweep expands to, as Hydra's basic sweeper expands them: for the sweep's
job count (summary.py), the grow sweeper's rounds, and a plain script that runs the same jobs
(scripts/bench_study.py) without importing the rest of scalinglab."""

from collections.abc import Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from scalinglab import ConfigError


def grid_jobs(overrides: list[str], config_loader=None) -> list[list[str]]:
    """The jobs a grid of overrides expands to, as Hydra's basic sweeper does: the cartesian
    product of the swept values, each job a list of `key=value` overrides. With Hydra's
    `config_loader`, a config group's `glob(...)` sweeps its options."""
    jobs: list[list[str]] = [[]]
    parser = OverridesParser.create(config_loader=config_loader)
    for o in parser.parse_overrides(overrides):
        key = o.get_key_element()
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise ConfigError(f"{o.input_line}: an interval is not a "
                              "grid; list its values, or sweep range(start, stop, step)")
        values = (list(o.sweep_string_iterator()) if o.is_sweep_override()
                  else [o.get_value_element_as_str()])
        jobs = [[*job, f"{key}={v}"] for job in jobs for v in values]
    return jobs


def sweep_overrides(params: Mapping, overrides: list[str]) -> list[str]:
    """A grid's overrides as `-m` combines them: `hydra.sweeper.params`, each replaced by a
    command-line override of the same key, and the command line's other overrides."""
    merged = {key: f"{key}={value}" for key, value in params.items()}
    merged.update({o.split("=", 1)[0]: o for o in overrides})
    return list(merged.values())


def count_jobs(config: DictConfig) -> int | None:
    """How many jobs a grid sweep expands to (command-line overrides and
    `hydra.sweeper.params`); None for a sweeper, or overrides, that are not a grid."""
    if config.hydra.runtime.choices.get("hydra/sweeper") not in ("basic", "pack"):
        return None
    params = config.hydra.sweeper.get("params") or {}
    try:
        return len(grid_jobs(sweep_overrides(params, list(config.hydra.overrides.task))))
    except ConfigError:  # not a grid: the sweeper says so, in one line
        return None
