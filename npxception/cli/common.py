"""What the commands share: the one-line error type, progress lines, loading a finished run."""

from __future__ import annotations

import sys


class CLIError(Exception):
    """A usage problem reported as one line."""


def say(quiet: bool, line: str) -> None:
    print(line, file=sys.stdout if quiet else sys.stderr, flush=True)


def load_run(checkpoint: str, backend: str | None):
    """(model with the weights used for evaluation, meta) from a run directory or checkpoint."""
    from ..models.config import XceptionConfig
    from ..models.xception import Xception
    from ..train import load_checkpoint

    groups, meta = load_checkpoint(checkpoint)
    if not isinstance(meta.get("model_config"), dict):
        raise CLIError(f"{checkpoint}: this checkpoint does not record its model configuration")
    if "model" not in groups:
        raise CLIError(f"{checkpoint}: this checkpoint holds no model weights")
    model = Xception(XceptionConfig(**meta["model_config"]), backend=backend or meta.get("backend", "auto"),
                     seed=meta.get("seed", 0))
    weights = groups["model"]
    if "ema" in groups:  # the run evaluated its Polyak-averaged weights; so does this
        weights = {**weights, **groups["ema"]}
    model.load_state_dict(weights)
    return model, meta
