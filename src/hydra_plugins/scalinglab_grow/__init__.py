"""hydra/sweeper=grow: grow the model round by round until a target is met.

A Hydra sweeper, so the rounds run on whichever launcher is configured (the default,
local_parallel, SLURM). This class launches the rounds and reads their records; what each round
decides is scalinglab/grow.py's. Hydra takes sweepers only from the hydra_plugins namespace,
hence this package. Hydra imports every plugin module of the environment at start-up, whatever
the app, so this one imports scalinglab (and pandas, scipy) only once a grow sweep starts.
"""

import logging
import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("scalinglab")
SIZE_KEY = "model.target_params"


class GrowSweeper(Sweeper):
    """Each round launches `model.target_params` sizes (x every other swept override, e.g.
    `seed=0,1`) and reads their run records; grow.json in the sweep directory keeps every
    round. Re-running the same command replays the search: completed jobs are skipped."""

    def __init__(self, params=None, **settings) -> None:
        self.settings = settings  # validated by Settings.from_config when the sweep starts
        self.params = dict(params or {})  # as hydra.sweeper.params of the basic sweeper
        self.config = self.launcher = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from scalinglab.identity import register_resolver

        register_resolver()  # the job directories' ${job_name:}
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _base_jobs(self, arguments: list[str]) -> list[list[str]]:
        """Every other override's grid (seeds, data, ...): each size runs once per entry."""
        from scalinglab import ConfigError
        from scalinglab.launch.grid import grid_jobs

        overrides = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        keys = [o.get_key_element() for o in OverridesParser.create().parse_overrides(overrides)]
        if SIZE_KEY in keys:
            raise ConfigError(f"the grow sweeper chooses {SIZE_KEY} each round; set the first "
                              "round's with hydra.sweeper.start=[...] instead")
        return grid_jobs(overrides)

    def sweep(self, arguments: list[str]) -> list:
        from scalinglab import ConfigError, exits
        from scalinglab.files import write_json
        from scalinglab.grow import GROW_NAME, Round, Settings, decide, round_line, summary

        try:
            if self.config.get("pack"):
                raise ConfigError("hydra/sweeper=grow does not pack jobs: drop pack=[...] (a "
                                  "round's sizes cannot share a model shape anyway)")
            settings = Settings.from_config(**OmegaConf.to_container(
                OmegaConf.create(self.settings), resolve=True))
            base = self._base_jobs(arguments)
        except ConfigError as error:
            log.error("config error: %s", error)
            sys.exit(exits.CONFIG)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("grow: target %s from %s params, %d per round, at most %gx per round",
                 settings.target, settings.start, settings.per_round, settings.growth)
        history, rounds, returns, sizes = [], [], [], settings.start
        for number in range(1, settings.max_rounds + 1):
            batch = [[*job, f"{SIZE_KEY}={n}"] for n in sizes for job in base]
            # Composing each job's config catches a bad override before training, and says
            # which jobs already completed (a re-run): those are read, not launched again.
            done = [self._completed(overrides) for overrides in batch]
            todo = [overrides for overrides, record in zip(batch, done, strict=True)
                    if record is None]
            if todo:
                results = self.launcher.launch(todo, initial_job_idx=sum(map(len, returns)))
                returns.append(results)
                launched = iter(_record(result) for result in results)
            log.info("round %d: %d job(s) already completed, %d launched", number,
                     len(batch) - len(todo), len(todo))
            rnd = Round(number, list(sizes))
            for record in (r if r is not None else next(launched) for r in done):
                history.append(record)
                rnd.jobs.append({key: record.get(key) for key in
                                 ("job", "path", "status", "reason", "params", "train_flops")}
                                | {"value": record.get(settings.target.column)})
            spent = sum(r.get("train_flops") or 0 for r in history)
            decide(rnd, history, settings, spent)
            rounds.append(rnd)
            log.info(round_line(rnd, settings.target))
            doc = summary(rounds, history, settings)
            write_json(sweep_dir / GROW_NAME, doc)
            if rnd.decision != "grow":
                break
            sizes = rnd.next_sizes
        answer = doc["answer"]
        found = (f": {answer['params']:,} params ({settings.target.column}="
                 f"{answer[settings.target.column]:.4g})" if answer else "")
        log.info("grow: %s%s. %d jobs, %.3g training FLOPs, %.1f s of training; %s",
                 doc["status"], found, doc["n_jobs"], doc["train_flops"], doc["time_s"],
                 sweep_dir / GROW_NAME)
        return returns

    def _completed(self, overrides: list[str]) -> dict | None:
        """The job's record when it already completed with this identity (the test
        train/run.py skips a job by), else None."""
        from scalinglab.identity import identity
        from scalinglab.records.io import completed_record

        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        out = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
        record = None if cfg.force else completed_record(out, identity(cfg))
        return None if record is None else {**record, "path": str(out)}


def _record(result) -> dict:
    """A launched job's run record, read from its directory (every launcher leaves one)."""
    from scalinglab.records.io import RECORD_NAME, read_record

    out = Path(result.hydra_cfg.hydra.runtime.output_dir)
    path = out / RECORD_NAME
    if not path.exists():
        return {"status": "failed", "reason": "the job left no run.json", "path": str(out)}
    return {**read_record(path), "path": str(out)}
