"""The run record: one schema behind every `run.json`, whatever the job's outcome.

A table tool: no torch, no Lightning. The fields are the contract (docs/reference.md, "The run
record"). The W&B summary and config keys and the sweep table's columns derive from the fields'
metadata, so a new measurement is one field here.
"""

from dataclasses import asdict, dataclass, field, fields

STATUSES = ("completed", "diverged", "failed", "preempted")


def _field(summary: str | None = None, config: bool = False, column: bool = False,
           default=None):
    """A record field; `summary`: its W&B summary key; `config`: also a W&B config key (to
    filter and group by); `column`: shown in the end-of-sweep table."""
    meta = {"summary": summary, "config": config, "column": column}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunRecord:
    status: str = _field("status", default="failed")  # one of STATUSES
    reason: str | None = _field()       # why it failed, diverged or was preempted
    stop_reason: str | None = _field("stop_reason")  # what ended training (max_epochs, ...)
    identity: str | None = _field(config=True)
    job: str | None = _field(config=True)
    family: str | None = _field(config=True, column=True)
    depth: int | None = _field(config=True, column=True)
    width: int | None = _field(config=True, column=True)
    params: int | None = _field("size/params", config=True, column=True)
    # without the parameters of embedding layers (nn.Embedding): Kaplan et al.'s N
    params_nonembedding: int | None = _field("size/params_nonembedding", config=True)
    param_bytes: int | None = _field("size/param_bytes")
    flops_per_example: int | None = _field("size/flops_per_example")
    train_flops: float | None = _field("size/train_flops")
    examples_seen: int | None = _field("size/examples_seen")
    # sequence data: the datamodule's tokens_per_example (data=text: the context), and tokens
    # seen = examples_seen x it
    tokens_per_example: int | None = _field()
    tokens_seen: int | None = _field("size/tokens_seen")
    budget_flops: float | None = _field("budget/flops", config=True)  # the budget it was given
    budget_examples: float | None = _field("budget/examples", config=True)
    steps: int | None = _field("size/steps")
    epochs: float | None = _field("size/epochs")  # fractional when a budget ends mid-epoch
    train_size: int | None = _field(config=True, column=True)
    data: str | None = _field(config=True)
    data_info: dict = _field(default={})  # what the datamodule says of its data (its `info`)
    seed: int | None = _field(config=True, column=True)
    val_loss: float | None = _field("final/val_loss", column=True)
    val_acc: float | None = _field("final/val_acc", column=True)
    train_loss: float | None = _field("final/train_loss")
    train_acc: float | None = _field("final/train_acc")
    # the dataset's held-out split on the final weights, when training examples validated
    # (data.val_from_train); otherwise val_* is that split
    test_loss: float | None = _field("final/test_loss", column=True)
    test_acc: float | None = _field("final/test_acc", column=True)
    val_bpb: float | None = _field("final/val_bpb")    # module=lm: bits per byte
    test_bpb: float | None = _field("final/test_bpb")
    best_val_loss: float | None = _field("best/val_loss")
    train_val_gap: float | None = _field("final/train_val_gap")
    time_s: float | None = _field("perf/time_s", column=True)
    setup_s: float | None = _field("perf/setup_s")
    throughput: float | None = _field("perf/throughput")
    peak_mem_bytes: int | None = _field("perf/peak_mem_bytes")
    # parameters, gradients and optimizer state (measure.training_state_bytes): what grows
    # with the model on a CPU, where peak_mem_bytes is the process's RSS, torch included
    state_bytes: int | None = _field("perf/state_bytes")
    world_size: int | None = _field(config=True)
    num_nodes: int | None = _field(config=True)  # the machines the ranks ran on
    strategy: str | None = _field()
    cluster_env: str | None = _field()
    device: str | None = _field()
    precision: str | None = _field()
    overrides: dict = _field(default={})  # what the command line or sweep set: path -> value
    config: dict = _field(default={})    # the job's resolved config (nested: not a column)
    versions: dict = _field(default={})  # python, torch, lightning (nested: not a column)

    def to_dict(self) -> dict:
        return asdict(self)


NESTED = tuple(f.name for f in fields(RunRecord)
               if f.name in ("config", "versions", "overrides", "data_info"))
FIELDS = frozenset(f.name for f in fields(RunRecord))
# run.json key -> W&B summary key
SUMMARY_KEYS = {f.name: f.metadata["summary"] for f in fields(RunRecord)
                if f.metadata["summary"]}
# run.json keys that are also W&B config keys (filterable and groupable in the UI)
CONFIG_KEYS = tuple(f.name for f in fields(RunRecord) if f.metadata["config"])
# the end-of-sweep table's columns
COLUMNS = tuple(f.name for f in fields(RunRecord) if f.metadata["column"])

# curve.csv, beside run.json: one row per evaluation of the job's learning curve
# (callbacks/curve.py)
CURVE_COLUMNS = (
    "step",           # optimizer steps taken
    "progress",       # step / the steps the run planned: below 1, its LR schedule had not ended
    "epoch",          # epochs of the run's own training set
    "examples_seen", "train_flops", "time_s", "lr",
    "val_loss", "val_acc", "train_loss", "train_acc",
)
# the record fields a collected curve table repeats on each row, to group and fit by
CURVE_KEYS = ("job", "identity", "status", "family", "depth", "width", "params",
              "flops_per_example", "train_size", "data", "seed", "budget_flops",
              "budget_examples")
