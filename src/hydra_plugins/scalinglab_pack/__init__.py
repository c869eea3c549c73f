"""hydra/sweeper=pack, the default: a grid sweeper that runs the jobs Hydra's basic sweeper
runs (every combination of the swept values; `hydra.sweeper.params`, a command-line value of
the same key replacing it; batches of `max_batch_size`), except that jobs differing only in the
`pack` keys launch as one job (scalinglab/launch/pack.py). With `pack=[]`, the default, it
packs nothing. Built on Hydra's public Sweeper, as the grow sweeper is. Hydra takes sweepers
only from the hydra_plugins namespace, hence this package; it imports scalinglab only once a
sweep starts."""

import logging
import sys
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("scalinglab")


class PackSweeper(Sweeper):
    """The grid of `params` and the command line, packed by `pack`, launched batch by batch."""

    def __init__(self, max_batch_size: int | None = None, params=None) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.config = self.launcher = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _jobs(self, arguments: list[str]) -> list[list[str]]:
        """The grid's jobs, packed by `pack`; a config error says why it cannot be."""
        from scalinglab import ConfigError
        from scalinglab.launch.grid import grid_jobs, sweep_overrides
        from scalinglab.launch.pack import check_keys, pack_jobs

        keys = check_keys(list(self.config.get("pack") or []))
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)["subdir"]
        if keys and subdir != "${job_name:}":
            raise ConfigError(f"pack: hydra.sweep.subdir={subdir}: a packed member's directory "
                              "is named as a job's, ${job_name:} (the default)")
        jobs = grid_jobs(sweep_overrides(self.params, arguments),
                         self.hydra_context.config_loader)
        if not keys:
            return jobs
        packed = pack_jobs(jobs, keys)
        log.info("pack: %d jobs as %d (jobs differing only in %s train together)", len(jobs),
                 len(packed), ", ".join(keys))
        return packed

    def sweep(self, arguments: list[str]) -> list:
        from scalinglab import ConfigError, exits

        try:
            jobs = self._jobs(arguments)
        except ConfigError as error:
            log.error("config error: %s", error)
            sys.exit(exits.CONFIG)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size or len(jobs)
        returns = []
        for start in range(0, len(jobs), size):
            batch = jobs[start:start + size]
            self.validate_batch_is_legal(batch)  # a bad override fails before any job runs
            results = self.launcher.launch(batch, initial_job_idx=start)
            for result in results:
                _ = result.return_value  # a job's own exception is raised here
            returns.append(results)
        return returns
