"""Any model from its config. `model._target_` names a callable that returns an `nn.Module`
(scalinglab's MLP and CNN, or your own); every key of `model` is its argument except
scalinglab's own:
- `family`: the record's family (and the W&B job type);
- `size_arg`: the argument that sizes the model (default `width`);
- `target_params`: solve `size_arg` for this many parameters, by building candidates on the
  meta device and counting (no memory, milliseconds); `size_multiple`: only multiples of it
  are sizes (a Transformer's width, a multiple of its heads);
- `parametrization`, `base_width`: sp or mup (models/parametrization.py); a callable that
  takes `parametrization` gets both (a Transformer scales its attention by them);
- `compile`: torch.compile the model (train/job.py).
What the data says of itself (`input_shape`, `num_classes`, `num_outputs`: train/job.py takes
them from the datamodule, and the input shape from a real batch when it has none) reaches the
callable when it takes an argument of that name and the config does not set one.
"""

import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

from scalinglab import ConfigError, check_number
from scalinglab.models import parametrization

SCALINGLAB_KEYS = ("family", "size_arg", "size_multiple", "target_params", "parametrization",
                   "base_width", "compile")
DATA_ARGS = ("input_shape", "num_classes", "num_outputs")
MAX_SIZE = 1 << 24


@dataclass(frozen=True)
class Built:
    """A built model and what the record says of it."""

    model: nn.Module
    family: str | None
    depth: int | None
    width: int | None  # the size argument's value (solved from target_params), unless that is
    # the depth
    params: int
    params_nonembedding: int  # without nn.Embedding layers' parameters (Kaplan et al.'s N)
    param_bytes: int


def count_params(model: nn.Module) -> int:
    """Trainable parameters, counted on the built module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def unwrap(error: BaseException) -> BaseException:
    """Hydra wraps errors raised while instantiating; the original error."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def _call(factory: Callable[..., nn.Module], size_arg: str, size: int) -> nn.Module:
    """The model at one size; the factory's own errors as config errors (they are the config's
    values, found before any training)."""
    try:
        model = factory(**{size_arg: size})
    except ConfigError:
        raise
    except Exception as e:
        error = unwrap(e)
        if isinstance(error, ConfigError):
            raise error from None
        raise ConfigError(f"model: {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model._target_ returned a {type(model).__name__}, not an nn.Module")
    return model


def _light(factory: Callable[..., nn.Module], size_arg: str, size: int) -> nn.Module:
    """The model at one size on the meta device (no memory, no init), or on the CPU for a
    model whose constructor needs real tensors (then memory and time, and the random state
    put back): for counting and for shapes only."""
    try:
        with torch.device("meta"):
            return factory(**{size_arg: size})
    except Exception:
        with torch.random.fork_rng(devices=[]):
            return _call(factory, size_arg, size)


def solve_size(count: Callable[[int], int], target: float, size_arg: str,
               multiple: int = 1) -> int:
    """The size, a multiple of `multiple`, whose parameter count is closest to `target`;
    counts must grow with the size."""
    @functools.cache
    def at(k: int) -> int:  # the count at the k-th size (the bisection revisits sizes)
        return count(k * multiple)

    smallest = at(1)
    if target < smallest:
        raise ConfigError(f"model.target_params={target:g} is below the smallest model: "
                          f"{smallest:,} parameters at model.{size_arg}={multiple}")
    hi, at_hi = 1, smallest
    while at_hi < target:  # double up to the target, then bisect
        if hi * multiple >= MAX_SIZE:
            raise ConfigError(f"model.target_params={target:g} needs model.{size_arg} above "
                              f"{MAX_SIZE}")
        at_next = at(2 * hi)
        if at_next <= at_hi:
            raise ConfigError(f"model.{size_arg} does not change the parameter count ({at_hi:,} "
                              f"at {hi * multiple} and {at_next:,} at {2 * hi * multiple}): set "
                              "model.size_arg to the argument that sizes the model")
        hi, at_hi = 2 * hi, at_next
    lo = max(1, hi // 2)
    while lo < hi:  # the smallest k with count >= target
        mid = (lo + hi) // 2
        if at(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = min((k for k in (hi - 1, hi) if k >= 1), key=lambda k: abs(at(k) - target))
    return best * multiple


def locate(path: str):
    """The object `path` names (a.b.C: module a.b, attribute C), or a config error naming
    `model._target_`. Not hydra.utils.get_object: that logs an error line of its own first,
    and a bad value is one line."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is not None and module.startswith(e.name):
                continue  # a shorter prefix may be the module
            raise
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            break
        return obj
    raise ConfigError(f"model._target_={path!r} cannot be imported")


def _factory(model_cfg: dict, data: dict, size_arg: str,
             base_width: float) -> Callable[..., nn.Module]:
    """The model's callable with every argument bound but the size."""
    args = {k: v for k, v in model_cfg.items() if k not in SCALINGLAB_KEYS and k != size_arg}
    target = args.get("_target_")
    if not target:
        raise ConfigError("model._target_ must name a callable that returns an nn.Module")
    fn = locate(target)
    accepted = inspect.signature(fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    if size_arg not in accepted and not takes_any:
        raise ConfigError(f"model.size_arg={size_arg!r}: {target} takes no argument "
                          f"{size_arg!r}; set model.size_arg to the argument that sizes it")
    for key in DATA_ARGS:
        if key in accepted and key not in args and data.get(key) is not None:
            args[key] = data[key]
    # A model that adapts itself to muP (the Transformer's attention) takes `parametrization`;
    # only it gets the base width too: in another model `base_width` may mean something else.
    if "parametrization" in accepted:
        args["parametrization"] = model_cfg.get("parametrization", "sp")
        if "base_width" in accepted:
            args["base_width"] = base_width
    return functools.partial(instantiate, args, _convert_="all")


def data_args(datamodule, x: torch.Tensor | None = None) -> dict:
    """What the data says of itself, for the model: the datamodule's `input_shape`,
    `num_classes` and `num_outputs` where it has them, the shape of a real example `x` (a
    batch) where it has no `input_shape`, and one output per class where it has no
    `num_outputs`."""
    args = {k: getattr(datamodule, k) for k in DATA_ARGS
            if getattr(datamodule, k, None) is not None}
    if "input_shape" not in args and x is not None:
        args["input_shape"] = tuple(x.shape[1:])
    if "num_outputs" not in args and "num_classes" in args:  # one output per class
        args["num_outputs"] = args["num_classes"]
    return args


def build_model(model_cfg: dict, data: dict | None = None) -> Built:
    """The model `model_cfg` describes (a plain dict of the `model` group), sized and
    parametrized, its errors as config errors naming the `model.*` key. `data`: what the data
    says of itself (DATA_ARGS)."""
    size_arg = str(model_cfg.get("size_arg") or "width")
    base_width = parametrization.check(model_cfg.get("parametrization", "sp"),
                                       model_cfg.get("base_width", 32))
    factory = _factory(model_cfg, data or {}, size_arg, base_width)
    size = model_cfg.get(size_arg)
    multiple = check_number("model.size_multiple", model_cfg.get("size_multiple") or 1, low=1,
                            integer=True)
    if model_cfg.get("target_params") is not None:
        target = check_number("model.target_params", model_cfg["target_params"], low=1)
        size = solve_size(lambda s: count_params(_light(factory, size_arg, s)), target,
                          size_arg, multiple)
    elif size is not None:
        size = check_number(f"model.{size_arg}", size, low=1, integer=True)
    if size is None:
        raise ConfigError(f"model.{size_arg} or model.target_params must be set")
    model = _call(factory, size_arg, size)
    if model_cfg.get("parametrization") == "mup":
        model = parametrization.apply(model, lambda s: _light(factory, size_arg, s), size,
                                      base_width)
    # the record's depth and width: the config's, with the size argument's solved value
    depth = size if size_arg == "depth" else model_cfg.get("depth")
    width = model_cfg.get("width") if size_arg == "depth" else size
    embedding = sum(count_params(m) for m in model.modules() if isinstance(m, nn.Embedding))
    params = count_params(model)
    return Built(model, model_cfg.get("family"), depth, width, params, params - embedding,
                 sum(p.numel() * p.element_size() for p in model.parameters()))
