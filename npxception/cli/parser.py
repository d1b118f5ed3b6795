"""The argument parser of `npxception`. The training options come from `TrainConfig`'s fields.

Every `TrainConfig` field is a `--<field-name>` flag of `train` (a bool field True by default is
`--no-<field-name>`), with the field's help text and `TrainConfig.small()`'s value as default, so a
new setting needs no CLI code. `train`'s other defaults are in `TRAIN_DEFAULTS`. The train parser
takes its defaults through `set_defaults`, never per argument, so `build_parser(defaults=False)`
tells which options were given on the command line (what `--resume` checks against the checkpoint).

Groups of `train`: data (where the images come from), model, optimization (TrainConfig), run (where
and how this process runs: output, resume, threads, progress); flags about loading data go in the
data group, flags about processes and devices in the run group.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..backends import BACKENDS
from ..data import DATASETS
from ..train.config import TrainConfig

PRESETS = ("small", "tiny", "paper")
# Inference uses batch norm's moving statistics; with Keras's momentum 0.99 they still remember
# their initial values after a few hundred steps, and validation accuracy sits near chance while
# training accuracy climbs. 0.9 follows the network within a few dozen steps.
TRAIN_BN_MOMENTUM = 0.9
TRAIN_CONFIG = TrainConfig.small()
TRAIN_DEFAULTS = {
    "dataset": "shapes", "data_dir": None, "data_path": None, "train_size": None, "val_size": None,
    "image_size": None, "data_seed": 0, "stream": None, "workers": None, "skip_bad_images": False,
    "val_data_dir": None,
    "preset": "small", "width_multiplier": None, "middle_blocks": None, "dropout": None,
    "bn_momentum": TRAIN_BN_MOMENTUM, "backend": "auto",
    **dataclasses.asdict(TRAIN_CONFIG),
    "out": None, "resume": None, "quiet": False, "threads": None, "max_steps": None,
    "sync_bn": False, "bucket_mb": 4.0, "reduction": "ring", "comm_timeout": 300.0,
}
_TYPES = {"int": int, "float": float, "str": str}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _data_options(p: argparse.ArgumentParser, *, for_training: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS,
                   help=("shapes: built-in procedural images (default); " if for_training else "")
                   + "cifar10: cifar-10-batches-py in --data-dir; npz: --data-path with 'images' uint8 NHWC "
                     "and 'labels'; folder: --data-dir with one subfolder per class; shards: webdataset "
                     ".tar shards (KEY.jpg + KEY.cls) in --data-dir, a glob or a {000..099} range, with "
                     "classes.txt or classes.json beside them for class names")
    g.add_argument("--data-dir", help="folder for cifar10 / folder / shards datasets")
    g.add_argument("--data-path", help=".npz file for the npz dataset")
    if for_training:
        g.add_argument("--val-data-dir", help="folder / shards: validate on these images (a held-out shard, a test "
                                              "folder) and train on every image of --data-dir")
    g.add_argument("--train-size", type=int, help="use only the first N training images "
                                                  "(shapes: how many to draw, default 6000)")
    g.add_argument("--val-size", type=int, help="validation images: held out from npz / folder "
                                                "(default a tenth); shapes: how many (default 1000)")
    g.add_argument("--image-size", type=int, help="image side (shapes: default 32; folder: resize to it)")
    g.add_argument("--data-seed", type=int, help="seed of the built-in images and of the validation "
                                                 "hold-out (default 0)")
    mode = g.add_mutually_exclusive_group()
    # train's parser leaves unset options out (argument_default=SUPPRESS) to tell which were given
    unset = {} if for_training else {"default": None}
    mode.add_argument("--stream", dest="stream", action="store_true", **unset,
                      help="decode images from disk as training goes (default: when they are large or many)")
    mode.add_argument("--in-memory", dest="stream", action="store_false", help="decode every image up front")
    g.add_argument("--workers", type=int, help="processes decoding streamed images (default: cores - 1)")
    g.add_argument("--skip-bad-images", action="store_true", help="streamed: log and skip unreadable files")


def _train_config_options(p: argparse.ArgumentParser) -> None:
    o = p.add_argument_group("optimization")
    for f in dataclasses.fields(TrainConfig):
        default = getattr(TRAIN_CONFIG, f.name)
        if f.type == "bool":
            if default is not True:
                raise AssertionError(f"TrainConfig.{f.name}: a flag for a bool that defaults to False is missing")
            o.add_argument(_flag("no_" + f.name), dest=f.name, action="store_false",
                           help=f"turn off: {f.metadata['help']}")
        else:
            o.add_argument(_flag(f.name), type=_TYPES[f.type], choices=f.metadata.get("choices"),
                           help=f"{f.metadata['help']} (default {default})")


def _train_parser(sub, defaults: bool) -> None:
    d = TRAIN_DEFAULTS
    t = sub.add_parser("train", help="train a model (default: small() on the built-in shapes)",
                       argument_default=argparse.SUPPRESS)
    _data_options(t, for_training=True)
    m = t.add_argument_group("model")
    m.add_argument("--preset", choices=PRESETS, help=f"XceptionConfig preset (default {d['preset']})")
    m.add_argument("--width-multiplier", type=float, help="override the preset's channel scale")
    m.add_argument("--middle-blocks", type=int, help="override the preset's middle-flow blocks (0-8)")
    m.add_argument("--dropout", type=float, help="override the preset's dropout before the classifier")
    m.add_argument("--bn-momentum", type=float,
                   help=f"batch-norm moving-average momentum (default {d['bn_momentum']}; Keras and the "
                        "paper use 0.99, whose moving statistics need thousands of steps to settle)")
    m.add_argument("--backend", choices=BACKENDS,
                   help="auto (default: cuda when numba-cuda sees a GPU, else cpu), cpu (Numba), cuda, numpy")
    _train_config_options(t)
    r = t.add_argument_group("run")
    r.add_argument("--out", help="run directory (default runs/<timestamp>)")
    r.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR with its saved "
                                                   "settings (options that contradict them are refused)")
    r.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch")
    r.add_argument("--max-steps", type=int, help="save and stop after K steps (resumable), for smoke runs")
    r.add_argument("--threads", type=int, help="CPU threads for Numba kernels and BLAS (default: all)")
    _distributed_options(t)
    if defaults:
        t.set_defaults(**d)


def _distributed_options(p: argparse.ArgumentParser) -> None:
    # Used only under an MPI launcher with several processes (mpiexec -n N npxception train ...).
    g = p.add_argument_group("several processes (under mpiexec; --batch-size is the global batch)")
    g.add_argument("--sync-bn", action="store_true", help="batch-norm statistics over the global batch: "
                   "N processes compute what one process computes")
    g.add_argument("--bucket-mb", type=float, help="gradient bucket size in MB (default 4)")
    g.add_argument("--reduction", choices=("ring", "ordered", "mpi"),
                   help="ring: fixed-order ring reduce-scatter + allgather, 2(N-1)/N of the gradients per "
                        "process, bitwise repeatable (default); ordered: gather and sum in rank order (N-1 "
                        "copies per process); mpi: MPI_Iallreduce")
    g.add_argument("--comm-timeout", type=float, metavar="SECONDS",
                   help="end the job, naming the processes that did not arrive, when one waits longer than "
                        "this at an exchange (default 300; the first step may take 10x, at least 30 minutes)")


def build_parser(defaults: bool = True) -> argparse.ArgumentParser:
    """The parser; with `defaults=False`, `train` leaves out every option not on the command line."""
    parser = argparse.ArgumentParser(prog="npxception", description="Xception from scratch: train, "
                                     "evaluate, predict, inspect and gradient-check.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors "
                                                             "(accepted anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub, defaults)

    e = sub.add_parser("evaluate", help="loss, top-1 and top-5 of a checkpoint")
    e.add_argument("checkpoint", help="a run directory (its last checkpoint), or a checkpoint file: RUN/best.npz "
                                      "for the epoch with the best validation top-1")
    _data_options(e, for_training=False)
    e.add_argument("--backend", choices=BACKENDS, help="default: the run's backend")
    e.add_argument("--batch-size", type=int, default=250)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--threads", type=int, help="CPU threads for Numba kernels and BLAS (default: all)")

    pr = sub.add_parser("predict", help="top-k classes of image files")
    pr.add_argument("checkpoint", help="a run directory (its last checkpoint), or RUN/best.npz")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top-k", type=int, default=3, help="how many classes to list per image (>= 1)")
    pr.add_argument("--backend", choices=BACKENDS, help="default: the run's backend")
    pr.add_argument("--json", action="store_true", help="print one JSON object per image")

    s = sub.add_parser("summary", help="the model's layer table")
    s.add_argument("--preset", choices=PRESETS, default="paper")
    s.add_argument("--image-size", type=int, help="override the preset's input size")
    s.add_argument("--num-classes", type=int, help="override the preset's number of classes")

    g = sub.add_parser("gradcheck", help="finite-difference check of every op and layer (float64)")
    g.add_argument("--backend", choices=("numpy", "cpu"), default="numpy")
    g.add_argument("--tol", type=float, default=1e-6)
    return parser


def given_train_options(argv: list[str]) -> set[str]:
    """The `train` options (dest names) that `argv` gives explicitly."""
    args = build_parser(defaults=False).parse_args(argv)
    return set(vars(args)) - {"command", "debug"}
