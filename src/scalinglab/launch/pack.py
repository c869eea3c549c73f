"""Packing a grid's jobs (`pack=[module.lr,seed]`): jobs that differ only in the packed keys
become one job of K members (train/pack.py), which the launcher runs like any other. The
sweeper (hydra_plugins/scalinglab_pack) calls `pack_jobs` on each batch of jobs. No torch."""

import re

from hydra.core.override_parser.overrides_parser import OverridesParser

from scalinglab import ConfigError

# What members of one pack may differ in: everything else (the model's shape, the data, the
# Trainer) is built once for the whole pack.
PACKABLE = ("seed", "module.lr", "module.weight_decay")


def key_of(override: str) -> str:
    """The key an override sets (`+a.b=1` sets a.b)."""
    return OverridesParser.create().parse_override(override).key_or_group


def check_keys(keys) -> list[str]:
    """`pack` as a list of packable keys, or a config error saying why a key cannot be."""
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"pack must be a list of keys, e.g. pack=[module.lr,seed]; got {keys!r}")
    for key in keys:
        if key in PACKABLE:
            continue
        why = ("changes the model, its shapes or its layers" if key.startswith("model")
               else "changes the data" if key.startswith("data")
               else "is shared by all members of a pack")
        raise ConfigError(f"pack: {key} {why}; only {', '.join(PACKABLE)} can be packed")
    return list(keys)


def _quoted(override: str) -> str:
    """`override` as a quoted string of Hydra's grammar: a quote is escaped, and so are the
    backslashes before a quote (the string's own closing one too); others stay as they are."""
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", override)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped) + "'"


def pack_jobs(jobs: list[list[str]], keys: list[str]) -> list[list[str]]:
    """Jobs (lists of overrides) that differ only in `keys`, as one job each: their shared
    overrides and `pack_members`, each member's own overrides of `keys`. A job alone in its
    group stays as it was."""
    groups: dict[tuple[str, ...], list[list[str]]] = {}
    for job in jobs:
        shared = tuple(o for o in job if key_of(o) not in keys)
        groups.setdefault(shared, []).append([o for o in job if key_of(o) in keys])
    packed = []
    for shared, members in groups.items():
        if len(members) == 1:
            packed.append([*shared, *members[0]])
            continue
        listed = ",".join("[" + ",".join(map(_quoted, own)) + "]" for own in members)
        packed.append([*shared, f"pack_members=[{listed}]"])
    return packed
