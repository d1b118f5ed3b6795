"""The command line: `npxception train | evaluate | predict | summary | gradcheck`.

    npxception train                          # small() on the built-in shapes, cpu backend (or cuda)
    npxception train --dataset npz --data-path cifar.npz --val-size 1000 --epochs 20
    npxception evaluate runs/20250101-120000 --json
    npxception predict runs/20250101-120000 cat.png dog.jpg
    npxception summary --preset paper
    npxception gradcheck

Every error (a missing file, a bad option value, a diverged run, a request too large for the
machine, and anything unexpected) prints one line and exits non-zero; `--debug`, anywhere on the
line, shows the full traceback instead. Warnings print as one line too.

Files: `parser.py` (the options; train's come from TrainConfig), `train.py` (train and resume),
`commands.py` (evaluate, predict, summary, gradcheck), `common.py` (what they share).
"""

from __future__ import annotations

import sys
import warnings

from ..data import DatasetError
from .commands import cmd_evaluate, cmd_gradcheck, cmd_predict, cmd_summary
from .common import CLIError
from .parser import PRESETS, TRAIN_DEFAULTS, build_parser, given_train_options
from .train import cmd_train

__all__ = ["PRESETS", "TRAIN_DEFAULTS", "CLIError", "build_parser", "main"]

COMMANDS = {"evaluate": cmd_evaluate, "predict": cmd_predict, "summary": cmd_summary, "gradcheck": cmd_gradcheck}


def _run(args, argv: list[str]) -> int:
    if getattr(args, "threads", None) is not None:
        from ..threads import set_num_threads

        set_num_threads(args.threads)
    if args.command == "train":
        return cmd_train(args, given_train_options(argv))
    return COMMANDS[args.command](args)


def _message(error: BaseException) -> str:
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


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"npxception: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `npxception` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    previous = warnings.showwarning
    if not debug:
        warnings.showwarning = _one_line_warnings
    try:
        return _run(args, argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print("npxception: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the command line's promise: one line, never a traceback
        if debug:
            raise
        print(f"npxception {args.command}: error: {_message(e)}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous
