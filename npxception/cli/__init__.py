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

from .commands import cmd_evaluate, cmd_gradcheck, cmd_predict, cmd_summary
from .common import CLIError, error_line
from .options import check_ranges, set_threads
from .parser import PRESETS, TRAIN_DEFAULTS, build_parser, given_train_options
from .train import cmd_train

__all__ = ["PRESETS", "TRAIN_DEFAULTS", "CLIError", "build_parser", "main"]

COMMANDS = {"evaluate": cmd_evaluate, "predict": cmd_predict, "summary": cmd_summary, "gradcheck": cmd_gradcheck}


def _run(args, argv: list[str]) -> int:
    if args.command == "train":  # checked in its set-up, where the ranks of an MPI job agree on them
        return cmd_train(args, given_train_options(argv))
    check_ranges(args)
    set_threads(args)
    return COMMANDS[args.command](args)


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
        print(f"npxception {args.command}: error: {error_line(e)}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous
