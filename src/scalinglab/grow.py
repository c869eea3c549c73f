"""Grow the model until a target is met: the decisions of `hydra/sweeper=grow`, round by round.

The sweeper (hydra_plugins/scalinglab_grow) launches each round's jobs on the configured
launcher and hands their run records here. Each round: stop with `met` as soon as a size meets
the target (the answer is the smallest such size); else fit the metric against parameters with
the project's own fit (an accuracy as its error rate, 1 - acc), predict the size that reaches
the target, and stop with `unreachable` when the bootstrap puts the fitted floor above the
target with the configured confidence, or with `budget` when the predicted size's whole
interval lies past `max_params` or `max_train_flops` (no round could reach it) or the next
round would pass a limit; else train sizes that bracket the prediction, at most `growth` x the
largest so far.

A table tool: no torch, no Lightning.
"""

import math
import re
import warnings
from dataclasses import asdict, dataclass, field, fields

import pandas as pd

from scalinglab import ConfigError, check_number
from scalinglab.fit import FitError, fit
from scalinglab.records.schema import RunRecord

GROW_NAME = "grow.json"
_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")
MIN_STEP = 1.25  # a new size is at least this factor above the largest trained one
# Sizes needed before the floor can stop a search: a bootstrap over 4 sizes mostly draws 2 or 3
# distinct ones, and puts the floor at the data's edge far too confidently.
MIN_SIZES_TO_STOP = 5
NUMERIC = {f.name for f in fields(RunRecord) if f.type in (float | None, int | None)}


@dataclass(frozen=True)
class Target:
    """`column>=value` or `column<=value` on a run-record column. An accuracy (`*_acc`) is
    fitted as its error rate, 1 - acc, so every fitted metric falls with size."""

    column: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "Target":
        match = _TARGET.match(str(text))
        if not match:
            raise ConfigError(f"hydra.sweeper.target={text!r}: write it as COLUMN>=VALUE or "
                              "COLUMN<=VALUE, e.g. 'val_acc>=0.93' or 'val_loss<=0.5'")
        column, op, value = match.group(1), match.group(2), float(match.group(3))
        if column not in NUMERIC:
            raise ConfigError(f"hydra.sweeper.target: {column!r} is not a run-record column; "
                              f"use one of {', '.join(sorted(NUMERIC))}")
        if column.startswith("test_"):
            raise ConfigError(f"hydra.sweeper.target: {column!r} is the test split, which a "
                              "search must not choose by; target val_* (with "
                              "data.val_from_train=N, N held-out training examples)")
        accuracy = column.endswith("_acc")
        if accuracy != (op == ">="):
            raise ConfigError(f"hydra.sweeper.target={text!r}: an accuracy is grown to with >=, "
                              "a loss (or any metric that falls with size) with <=")
        if accuracy and not 0 < value < 1:
            raise ConfigError(f"hydra.sweeper.target={text!r}: an accuracy target lies in (0, 1)")
        return cls(column, op, value)

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value:g}"

    @property
    def fitted(self) -> str:
        """What the fit sees: the error rate for an accuracy, else the column itself."""
        return f"1 - {self.column}" if self.op == ">=" else self.column

    def error(self, value: float) -> float:
        return 1 - value if self.op == ">=" else value

    def met(self, value: float) -> bool:
        return value >= self.value if self.op == ">=" else value <= self.value


@dataclass
class Settings:
    """hydra.sweeper.*: the search's settings (conf/hydra/sweeper/grow.yaml)."""

    target: Target
    start: list[int]
    per_round: int
    max_params: float
    max_rounds: int
    max_train_flops: float | None
    growth: float
    bracket: float
    confidence: float
    bootstrap: int
    seed: int

    @classmethod
    def from_config(cls, target, start, per_round=2, max_params=1e6, max_rounds=6,
                    max_train_flops=None, growth=4.0, bracket=2.0, confidence=0.95,
                    bootstrap=200, seed=0) -> "Settings":
        """Validated settings: a bad one is a ConfigError naming its key."""
        if isinstance(start, int | float):
            start = [start]
        if not start:
            raise ConfigError("hydra.sweeper.start is empty: give the first round's "
                              "model.target_params, e.g. hydra.sweeper.start=[1000,3000]")
        start = sorted({int(check_number("hydra.sweeper.start", n, low=1)) for n in start})
        max_params = check_number("hydra.sweeper.max_params", max_params, low=1)
        if max_params < start[-1]:
            raise ConfigError(f"hydra.sweeper.max_params={max_params:g} is below the largest "
                              f"start size {start[-1]}")
        if max_train_flops is not None:
            max_train_flops = check_number("hydra.sweeper.max_train_flops", max_train_flops,
                                           low=0, low_open=True)
        return cls(Target.parse(target), start,
                   check_number("hydra.sweeper.per_round", per_round, low=1, integer=True),
                   max_params,
                   check_number("hydra.sweeper.max_rounds", max_rounds, low=1, integer=True),
                   max_train_flops,
                   check_number("hydra.sweeper.growth", growth, low=1, low_open=True),
                   check_number("hydra.sweeper.bracket", bracket, low=1, low_open=True),
                   check_number("hydra.sweeper.confidence", confidence, 0, 1, low_open=True,
                                high_open=True),
                   check_number("hydra.sweeper.bootstrap", bootstrap, low=20, integer=True),
                   check_number("hydra.sweeper.seed", seed, integer=True))

    def to_dict(self) -> dict:
        return {**asdict(self), "target": str(self.target)}


@dataclass
class Round:
    """One round: the sizes asked for, the jobs' outcomes, the fit, and what was decided."""

    round: int
    sizes: list[int]                 # model.target_params of its jobs
    jobs: list[dict] = field(default_factory=list)  # job, path, status, params, the metric
    fit: dict | None = None          # law, params, rmse, the floor's probability of blocking
    prediction: dict | None = None   # params reaching the target, with its interval
    decision: str = ""               # grow | met | unreachable | budget | failed
    why: str = ""
    next_sizes: list[int] = field(default_factory=list)


def measured(records: list[dict], target: Target) -> pd.DataFrame:
    """The completed jobs that measured the target's column, one row each."""
    return pd.DataFrame([r for r in records if r.get("status") == "completed"
                         and r.get(target.column) is not None and r.get("params")])


def by_size(records: list[dict], target: Target) -> pd.DataFrame:
    """The completed jobs' metric per size (seeds averaged), smallest size first."""
    table = measured(records, target)
    if table.empty:
        return pd.DataFrame(columns=["params", "value", "seeds"])
    return (table.groupby("params")[target.column].agg(value="mean", seeds="count")
            .reset_index().sort_values("params", ignore_index=True))


def fit_metric(records: list[dict], settings: Settings) -> tuple[dict | None, dict | None]:
    """The fitted law (power_offset from 4 sizes, else a plain power law from 3) and the
    predicted size reaching the target with its bootstrap interval; (None, None) with fewer
    than 3 sizes, or when the fit fails."""
    target = settings.target
    table = measured(records, target)
    if table.empty or table["params"].nunique() < 3:
        return None, None
    table = table.assign(_y=[target.error(v) for v in table[target.column]])
    table = table[table["_y"] > 0]  # a perfect score has no log
    if table["params"].nunique() < 3:
        return None, None
    law = "power_offset" if table["params"].nunique() >= 4 else "power"
    goal = target.error(target.value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(table[["params", "_y"]], x="params", y="_y", law=law,
                         bootstrap=settings.bootstrap, seed=settings.seed, target=goal,
                         ci=settings.confidence).fits[0]
    except FitError:
        return None, None
    reach = result.derived.get("target_reachable_frac")
    fitted = {"law": law, "y": target.fitted, "params": result.params,
              "rmse_log": result.rmse_log_fit, "n_sizes": int(table["params"].nunique()),
              "p_unreachable": None if reach is None else 1 - reach}
    interval = (result.ci or {}).get("target_x")
    prediction = {"params": result.derived.get("target_x"), "interval": interval,
                  "level": settings.confidence}
    return fitted, prediction


def next_sizes(largest: int, prediction: dict | None, settings: Settings) -> tuple[list[int], str]:
    """The next round's sizes: `bracket` apart around the predicted size (one each side of it
    for two per round), above the largest trained size and at most `growth` times it; with no
    prediction yet, geometric steps up to that cap."""
    cap, low = largest * settings.growth, largest * MIN_STEP
    k = settings.per_round
    n_star = (prediction or {}).get("params")
    if n_star is None:
        sizes = [largest * settings.growth ** ((i + 1) / k) for i in range(k)]
        return _ints(sizes), f"no prediction yet: geometric steps up to {settings.growth:g}x"
    how = "bracket the prediction"
    if n_star <= largest:
        how = "the prediction is at a size already trained: the next sizes above it"
        n_star = low * settings.bracket ** ((k - 1) / 2)
    sizes = [n_star * settings.bracket ** (i - (k - 1) / 2) for i in range(k)]
    if max(sizes) > cap and how == "bracket the prediction":
        how = f"the prediction is near or past {settings.growth:g}x the largest size: capped"
    return _ints(min(max(n, low), cap) for n in sizes), how


def _ints(sizes) -> list[int]:
    return sorted({int(round(s)) for s in sizes})


def decide(rnd: Round, history: list[dict], settings: Settings, spent_flops: float) -> Round:
    """Fill in the round's fit, prediction and decision from every record so far."""
    target = settings.target
    sizes = by_size(history, target)
    met = sizes[[target.met(v) for v in sizes["value"]]]
    if not met.empty:
        answer = met.iloc[0]
        rnd.decision = "met"
        rnd.why = (f"{int(answer['params']):,} params reach {target.column}="
                   f"{answer['value']:.4g} (mean of {int(answer['seeds'])} seed(s))")
        return rnd
    if sizes.empty:
        rnd.decision, rnd.why = "failed", "no job has completed: nothing to measure or fit"
        return rnd
    rnd.fit, rnd.prediction = fit_metric(history, settings)
    p_block = (rnd.fit or {}).get("p_unreachable")
    judged = rnd.fit is not None and rnd.fit["n_sizes"] >= MIN_SIZES_TO_STOP
    if judged and p_block is not None and p_block >= settings.confidence:
        rnd.decision = "unreachable"
        rnd.why = (f"{p_block:.0%} of {settings.bootstrap} bootstrap refits put the floor E of "
                   f"{target.fitted} above the target {target.error(target.value):.4g} "
                   f"(confidence {settings.confidence:g})")
        return rnd
    beyond = judged and beyond_limits(rnd.prediction, history, settings, spent_flops)
    if beyond:  # no round can reach the predicted size: growing toward it spends for nothing
        rnd.decision, rnd.why = "budget", beyond
        return rnd
    if rnd.round >= settings.max_rounds:
        rnd.decision, rnd.why = "budget", f"max_rounds={settings.max_rounds} reached"
        return rnd
    largest = max(max(rnd.sizes), int(sizes["params"].max()))
    proposed, how = next_sizes(largest, rnd.prediction, settings)
    if rnd.fit and not (rnd.prediction or {}).get("params"):
        short = (f"short of the {settings.confidence:g} needed to stop" if judged else
                 f"too few sizes to stop on (fewer than {MIN_SIZES_TO_STOP})")
        how = (f"the fitted floor blocks the target in {p_block or 0:.0%} of the refits, "
               f"{short}: geometric steps up to {settings.growth:g}x")
    kept = [n for n in proposed if n <= settings.max_params]
    if not kept:
        rnd.decision = "budget"
        rnd.why = f"the next sizes {proposed} pass max_params={settings.max_params:g}"
        return rnd
    if settings.max_train_flops is not None:
        per_param = _flops_per_param(history)
        estimate = per_param * sum(kept) * max(1, _jobs_per_size(history))
        if spent_flops + estimate > settings.max_train_flops:
            rnd.decision = "budget"
            rnd.why = (f"the next round ({kept}) would take ~{estimate:.3g} FLOPs, past "
                       f"max_train_flops={settings.max_train_flops:g} ({spent_flops:.3g} spent)")
            return rnd
    rnd.decision, rnd.next_sizes = "grow", kept
    rnd.why = how + (f"; clipped to max_params={settings.max_params:g}"
                     if len(kept) < len(proposed) else "")
    return rnd


def beyond_limits(prediction: dict | None, history: list[dict], settings: Settings,
                  spent_flops: float) -> str | None:
    """Why the predicted size cannot be trained, when even its interval's low end lies past
    max_params or past what max_train_flops has left; None when it may be reachable."""
    interval = (prediction or {}).get("interval")
    if not interval or interval[0] is None:
        return None
    low = interval[0]
    said = (f"the predicted size {prediction['params']:.3g} [{low:.3g}, {interval[1]:.3g}] "
            f"({prediction['level']:.0%} interval)")
    if low > settings.max_params:
        return f"{said} lies past max_params={settings.max_params:g}"
    if settings.max_train_flops is not None:
        need = _flops_per_param(history) * low * max(1, _jobs_per_size(history))
        if spent_flops + need > settings.max_train_flops:
            return (f"{said} would take ~{need:.3g} FLOPs at its low end, past "
                    f"max_train_flops={settings.max_train_flops:g} ({spent_flops:.3g} spent)")
    return None


def _flops_per_param(history: list[dict]) -> float:
    """Training FLOPs per parameter of the jobs so far (the same data and epochs at every
    size), from the largest trained job."""
    done = [r for r in history if r.get("train_flops") and r.get("params")]
    largest = max(done, key=lambda r: r["params"])
    return largest["train_flops"] / largest["params"]


def _jobs_per_size(history: list[dict]) -> int:
    counts = pd.Series([r.get("params") for r in history]).value_counts()
    return int(counts.max()) if len(counts) else 1


def summary(rounds: list[Round], history: list[dict], settings: Settings) -> dict:
    """grow.json: the final status and answer, what was spent, and every round."""
    last = rounds[-1] if rounds else None
    status = last.decision if last and last.decision != "grow" else "running"
    answer = None
    if status == "met":
        sizes = by_size(history, settings.target)
        met = sizes[[settings.target.met(v) for v in sizes["value"]]].iloc[0]
        missed = sizes[sizes["params"] < met["params"]]
        answer = {"params": int(met["params"]), settings.target.column: float(met["value"]),
                  "largest_missing": int(missed["params"].max()) if len(missed) else None}
    return {"status": status, "target": str(settings.target), "answer": answer,
            "why": last.why if last else "",
            "train_flops": float(sum(r.get("train_flops") or 0 for r in history)),
            "time_s": float(sum(r.get("time_s") or 0 for r in history)),
            "n_jobs": len(history), "settings": settings.to_dict(),
            "rounds": [asdict(r) for r in rounds]}


def round_line(rnd: Round, target: Target) -> str:
    """The round in one terminal line."""
    values = ", ".join(f"{j['params']:,}: {_fmt(j.get('value'))}" if j.get("params") else
                       f"{j['status']}" for j in rnd.jobs)
    parts = [f"round {rnd.round}: target_params {', '.join(f'{n:,}' for n in rnd.sizes)} -> "
             f"{target.column} {{{values}}}"]
    if rnd.fit:
        p = rnd.fit["params"]
        law = (f"{p['E']:.3g} + {p['A']:.3g} N^-{p['alpha']:.3g}" if "E" in p
               else f"{p['A']:.3g} N^-{p['alpha']:.3g}")
        parts.append(f"fit {rnd.fit['y']} = {law}")
    if rnd.prediction and rnd.prediction.get("params"):
        iv = rnd.prediction.get("interval")
        band = f" [{iv[0]:,.0f}, {iv[1]:,.0f}]" if iv else ""
        parts.append(f"predicted N = {rnd.prediction['params']:,.0f}{band}")
    elif rnd.fit:
        parts.append("predicted N: none, the fitted floor is above the target")
    decision = rnd.decision + (f" to {', '.join(f'{n:,}' for n in rnd.next_sizes)}"
                               if rnd.next_sizes else "")
    parts.append(f"{decision} ({rnd.why})")
    return "; ".join(parts)


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.4g}"
