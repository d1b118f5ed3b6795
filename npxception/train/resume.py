"""What a resume checks before a checkpoint's contents reach the model: the data it was trained on,
the number of processes it may continue on and how its gradients are summed, and every header
field's type and range (arrays are checked by their owners)."""

from __future__ import annotations

import math
import warnings

from .checkpoint import CheckpointError

# A copy of the data made without keeping modification times (`cp -r`) changes these alone; with the
# names, sizes and sampled contents unchanged, that is noted rather than refused.
TIMES_ONLY = frozenset({"mtimes_digest"})


def check_same_data(meta: dict, description: dict) -> None:
    """Refuse to continue a run on other data than its checkpoint's (another class list, other
    images, other counts): the result would be neither that run nor a new one."""
    saved = meta.get("data_description")
    if saved is None:  # written before descriptions were saved: only the class list can be checked
        names = meta.get("class_names")
        if names is not None and list(names) != list(description["train"]["class_names"]):
            raise ValueError(f"the data has classes {description['train']['class_names']}, the checkpoint "
                             f"{names}; a resumed run must see the data it was trained on")
        return
    for split in ("train", "val"):
        before, now = saved.get(split, {}), description[split]
        # Only what the checkpoint recorded can be compared: a key that describe_dataset learnt
        # after the checkpoint was written (a newer digest, file sizes) is missing from it and
        # cannot be checked, so it is skipped rather than taken for a change of data.
        changed = [key for key in now if key in before and before[key] != _jsonish(now[key])]
        if any(key not in TIMES_ONLY for key in changed):
            listed = "; ".join(f"{key}: {_brief(before[key])} (checkpoint) vs {_brief(now[key])}" for key in changed)
            raise ValueError(f"the {split} data differs from the checkpoint's ({listed}); "
                             "a resumed run must see the data it was trained on")
        if changed:
            warnings.warn(f"the {split} files' modification times differ from the checkpoint's, their names, sizes "
                          "and sampled contents do not (copied without keeping times?): resuming", UserWarning,
                          stacklevel=2)


def _brief(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"[{', '.join(map(repr, value[:3]))}, ... {len(value)} in all]"
    return repr(value)


def _jsonish(value):
    return list(_jsonish(v) for v in value) if isinstance(value, (tuple, list)) else value


def meta_field(meta: dict, name: str, kind: type, low: int | None = None, high: int | None = None):
    """meta[name] checked to be a `kind` (and for ints within [low, high]); CheckpointError if not."""
    if name not in meta:
        raise CheckpointError(f"the checkpoint has no {name!r} field")
    value = meta[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"checkpoint field {name!r} must be {kind.__name__}, got {value!r}")
    if kind is int and ((low is not None and value < low) or (high is not None and value > high)):
        raise CheckpointError(f"checkpoint field {name!r} must be in [{low}, {'any' if high is None else high}], "
                              f"got {value}")
    return value


def checked_progress(meta: dict, epochs: int, steps: int, running_keys: set[str]) -> tuple:
    """(epoch, batch, dropout_counter, ema_updates, running, history) of a checkpoint's header, each
    checked to be what a run of `epochs` epochs of `steps` steps can have written; CheckpointError if not."""
    epoch = meta_field(meta, "epoch", int, 0, epochs)
    batch = meta_field(meta, "batch", int, 0, steps - 1 if epoch < epochs else 0)
    dropout_counter = meta_field(meta, "dropout_counter", int, 0)
    ema_updates = meta_field(meta, "ema_updates", int, 0)
    running = meta_field(meta, "running", dict)
    if set(running) != running_keys or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                               for v in running.values()):
        raise CheckpointError(f"checkpoint field 'running' must hold the numbers {sorted(running_keys)}, "
                              f"got {running!r}")
    history = meta_field(meta, "history", list)
    if len(history) != epoch or not all(isinstance(h, dict) for h in history):
        raise CheckpointError(f"checkpoint field 'history' must hold one record per finished epoch "
                              f"({epoch}), got {len(history)}")
    return epoch, batch, dropout_counter, ema_updates, running, history


def check_same_world(meta: dict, size: int, batch_size: int, run_dir) -> tuple[bool, str | None]:
    """(sync_bn, note) for continuing the run of checkpoint `meta` on `size` processes (1 included);
    ValueError, saying how to resume, when that would change what the run computes.

    --batch-size is the global batch and a resume keeps it, so the number of processes changes
    only each process's share of it and, with that, what batch norm averages over. One process
    and sync-BN on any number average over the global batch: such a run resumes on any number of
    processes (with sync-BN when there are several), the same arithmetic up to rounding, with a
    note that it is not bit for bit the run it would have been. Without sync-BN on M > 1 processes
    every statistic is over one process's B/M images: on another number, 1 included, the network
    would train with other statistics than it learnt with, a run that is neither the old one nor a
    new one. That is refused, as every other option that contradicts a checkpoint is on --resume.
    """
    saved = meta.get("distributed") or {"world_size": 1, "sync_bn": False}
    trained_on = meta_field(saved, "world_size", int, 1)
    global_statistics = trained_on == 1 or bool(saved.get("sync_bn", False))
    if not global_statistics and size != trained_on:
        raise ValueError(f"{run_dir} was trained on {trained_on} processes without --sync-bn: its batch-norm "
                         f"statistics are over each process's share of the global batch of {batch_size}, and on "
                         f"{_processes(size)} they would change; resume it with mpiexec -n {trained_on} "
                         f"npxception train --resume {run_dir}")
    if size == trained_on:
        return global_statistics and size > 1, None
    note = (f"{run_dir} was trained on {_processes(trained_on)}, resuming on {size}: the global batch of "
            f"{batch_size} and its batch-norm statistics stay the same{' (sync-BN)' if size > 1 else ''}; "
            "the results match an uninterrupted run to rounding, not bit for bit")
    return size > 1, note


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def resumed_reduction(meta: dict, requested: str, run_dir) -> tuple[str, str | None]:
    """(reduction, note) for continuing the run of checkpoint `meta` on several processes.

    A run trained on several processes keeps the reduction it was trained with, so that on the same
    number of processes it goes on with the same bits: a run checkpointed with "ordered" (the
    default before the ring) resumes with it and says so once, since new runs sum around the ring.
    A run trained on one process has no reduction yet and takes the `requested` one."""
    saved = meta.get("distributed") or {}
    reduction = saved.get("reduction")
    if reduction is None or meta_field(saved, "world_size", int, 1) == 1:
        return requested, None
    if reduction not in ("ring", "ordered", "mpi"):
        raise CheckpointError(f"checkpoint field 'distributed' names reduction {reduction!r}, expected one of "
                              "ring, ordered, mpi")
    if reduction == "ring":
        return reduction, None
    return reduction, (f"{run_dir} sums its gradients with --reduction {reduction}, as it was trained, and keeps "
                       "it on resume (new runs sum around the ring by default)")
