"""What the commands share: the one-line errors, progress lines, loading a finished run."""

from __future__ import annotations

import sys


class CLIError(Exception):
    """A usage problem reported as one line."""


def error_line(error: BaseException) -> str:
    """The one line an error is reported as (after "npxception COMMAND: error: ")."""
    from ..data import DatasetError
    from ..train.config import SettingError

    if isinstance(error, SettingError):  # a TrainConfig field is a --flag of the same name
        return f"--{error.name.replace('_', '-')} {error.message}"
    if isinstance(error, MemoryError):
        detail = str(error) or "an allocation failed"
        if type(error).__name__ == "ResourceError":
            return detail
        return (f"out of memory ({detail}); ask for less: fewer or smaller images (--train-size, "
                "--image-size), a smaller --batch-size or model")
    if isinstance(error, (CLIError, DatasetError, ValueError, TypeError, RuntimeError, OSError)):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error} (an unexpected error; --debug shows where)"


def say(quiet: bool, line: str) -> None:
    print(line, file=sys.stdout if quiet else sys.stderr, flush=True)


def load_run(checkpoint: str, backend: str | None):
    """(model with the weights used for evaluation, meta) from a run directory or checkpoint."""
    from ..models.config import XceptionConfig
    from ..models.xception import Xception
    from ..train import load_checkpoint
    from ..train.checkpoint import checkpoint_format

    groups, meta = load_checkpoint(checkpoint)
    checkpoint_format(meta, checkpoint)
    if not isinstance(meta.get("model_config"), dict):
        raise CLIError(f"{checkpoint}: this checkpoint does not record its model configuration")
    if "model" not in groups:
        raise CLIError(f"{checkpoint}: this checkpoint holds no model weights")
    model = Xception(XceptionConfig(**meta["model_config"]), backend=backend or meta.get("backend", "auto"),
                     seed=meta.get("seed", 0))
    weights = groups["model"]
    if "ema" in groups:  # the run evaluated its moving average of the weights; so does this
        weights = {**weights, **groups["ema"]}
    model.load_state_dict(weights)
    return model, meta
