"""Range checks of the numeric options that no settings object reports under its flag's name.

TrainConfig's fields (--epochs, --seed, ...) and the data options (--train-size, --data-seed, ...)
are checked where they enter and named by their flag. The model's options reach XceptionConfig,
whose messages name its fields (`dropout must be ...`), and the rest would fail far from the
command line or not at all (a --bucket-mb of 0 on one process), so they are checked here, first.
"""

from __future__ import annotations

import math

from .common import CLIError


def _finite_positive(value) -> bool:
    return math.isfinite(value) and value > 0


# option (dest) -> (test, what the value must be); NaN fails every test.
RANGES = {
    "width_multiplier": (_finite_positive, "a finite number > 0"),
    "middle_blocks": (lambda v: 0 <= v <= 8, "in [0, 8]"),
    "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "bn_momentum": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "max_steps": (lambda v: v >= 1, ">= 1"),
    "bucket_mb": (_finite_positive, "a finite number > 0"),
    "comm_timeout": (_finite_positive, "a finite number of seconds > 0"),
    "image_size": (lambda v: v >= 1, ">= 1"),
    "num_classes": (lambda v: v >= 1, ">= 1"),
    "tol": (_finite_positive, "a finite number > 0"),
}


def check_ranges(args) -> None:
    """CLIError naming the flag of the first given option outside its range (None: not given)."""
    for name, (ok, expected) in RANGES.items():
        value = getattr(args, name, None)
        if value is not None and not ok(value):
            raise CLIError(f"--{name.replace('_', '-')} must be {expected}, got {value!r}")
    threads = getattr(args, "threads", None)
    if threads is not None:
        from ..threads import max_threads

        if not 1 <= threads <= max_threads():
            raise CLIError(f"--threads must be in [1, {max_threads()}] (NUMBA_NUM_THREADS), got {threads}")


def set_threads(args) -> None:
    """Apply --threads (checked by check_ranges) to Numba and BLAS."""
    if getattr(args, "threads", None) is not None:
        from ..threads import set_num_threads

        set_num_threads(args.threads)
