"""The jobs a grid sweep expands to, as Hydra's basic sweeper expands them: for the sweep's
job count (summary.py), the grow sweeper's rounds, and a plain script that runs the same jobs
(scripts/bench_study.py) without importing the rest of scalinglab."""

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig


def grid_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs a grid of overrides expands to, as Hydra's basic sweeper does: the cartesian
    product of the swept values, each job a list of `key=value` overrides."""
    jobs: list[list[str]] = [[]]
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.get_key_element()
        values = (list(o.sweep_string_iterator()) if o.is_sweep_override()
                  else [o.get_value_element_as_str()])
        jobs = [[*job, f"{key}={v}"] for job in jobs for v in values]
    return jobs


def count_jobs(config: DictConfig) -> int | None:
    """How many jobs a grid sweep expands to (command-line overrides and
    `hydra.sweeper.params`); None for a sweeper that is not a grid."""
    if config.hydra.runtime.choices.get("hydra/sweeper") != "basic":
        return None
    params = config.hydra.sweeper.get("params") or {}
    overrides = {key: f"{key}={value}" for key, value in params.items()}
    for o in config.hydra.overrides.task:
        overrides[o.split("=", 1)[0]] = o
    return len(grid_jobs(list(overrides.values())))
