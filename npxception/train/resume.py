"""What `Trainer.restore` checks before a checkpoint's contents reach the model: the data it was
trained on, and every header field's type and range (arrays are checked by their owners)."""

from __future__ import annotations

from .checkpoint import CheckpointError


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
        changed = [f"{key}: {_brief(before.get(key))} (checkpoint) vs {_brief(now[key])}" for key in now
                   if before.get(key) != _jsonish(now[key])]
        if changed:
            raise ValueError(f"the {split} data differs from the checkpoint's ({'; '.join(changed)}); "
                             "a resumed run must see the data it was trained on")


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
