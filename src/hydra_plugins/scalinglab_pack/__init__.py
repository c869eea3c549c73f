"""hydra/sweeper=pack, the default: Hydra's basic grid sweeper, except that jobs differing only
in the `pack` keys launch as one job (scalinglab/launch/pack.py). With `pack=[]` (the default)
it is the basic sweeper. Hydra takes sweepers only from the hydra_plugins namespace, hence this
package; it imports scalinglab only once a sweep starts."""

import logging
import sys

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

log = logging.getLogger("scalinglab")


class PackSweeper(BasicSweeper):
    """The basic sweeper, packing each batch of jobs by `pack`."""

    keys: list[str] = []

    def sweep(self, arguments: list[str]):
        from scalinglab import ConfigError, exits
        from scalinglab.launch.pack import check_keys

        try:
            self.keys = check_keys(list(self.config.get("pack") or []))
            subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)["subdir"]
            if self.keys and subdir != "${job_name:}":
                raise ConfigError(f"pack: hydra.sweep.subdir={subdir}: a packed member's "
                                  "directory is named as a job's, ${job_name:} (the default)")
        except ConfigError as error:
            log.error("config error: %s", error)
            sys.exit(exits.CONFIG)
        return super().sweep(arguments)

    def get_job_batch(self):
        from scalinglab.launch.pack import pack_jobs

        batch = super().get_job_batch()
        if not self.keys:
            return batch
        packed = pack_jobs([list(job) for job in batch], self.keys)
        log.info("pack: %d jobs as %d (jobs differing only in %s train together)", len(batch),
                 len(packed), ", ".join(self.keys))
        return packed
