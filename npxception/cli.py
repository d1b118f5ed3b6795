"""The command line: `npxception train | evaluate | predict | summary | gradcheck`.

    npxception train                          # small() on the built-in shapes, cpu backend (or cuda)
    npxception train --dataset npz --data-path cifar.npz --val-size 1000 --epochs 20
    npxception train --dataset shards --data-dir 'shards/train-{000000..000146}.tar' --preset paper
    npxception evaluate runs/20250101-120000 --json
    npxception predict runs/20250101-120000 cat.png dog.jpg
    npxception summary --preset paper
    npxception gradcheck

Errors (a missing file, a bad option value, a diverged run) print one line and exit non-zero;
`--debug` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .backends import BACKENDS, default_backend
from .data import DATASETS, DatasetError, DataSpec
from .train.optimizers import OPTIMIZERS
from .train.schedules import SCHEDULES

PRESETS = ("small", "tiny", "paper")
# `npxception train` with no options: small() on 6,000 built-in 32x32 images, a few minutes on
# two cores. SGD with Nesterov momentum and a short warm-up then cosine decay reaches well
# above 95% validation accuracy in that time.
TRAIN_DEFAULTS = dict(epochs=5, batch_size=64, optimizer="nesterov", lr=0.05, schedule="cosine",
                      warmup_epochs=0.5, weight_decay=1e-5, ema_decay=0.0)
# Inference uses batch norm's moving statistics; with Keras's momentum 0.99 they still remember
# their initial values after a few hundred steps, and validation accuracy sits near chance while
# training accuracy climbs. 0.9 follows the network within a few dozen steps.
TRAIN_BN_MOMENTUM = 0.9


class CLIError(Exception):
    """A usage problem reported as one line."""


# --------------------------------------------------------------------------- argument parsing

def _data_options(p: argparse.ArgumentParser, *, for_training: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="shapes" if for_training else None,
                   help="shapes: built-in procedural images (default); cifar10: cifar-10-batches-py in "
                        "--data-dir; npz: --data-path with 'images' uint8 NHWC and 'labels'; folder: "
                        "--data-dir with one subfolder per class; shards: webdataset .tar shards "
                        "(KEY.jpg + KEY.cls) in --data-dir, a glob or a {000..099} range, streamed")
    g.add_argument("--data-dir", help="folder for cifar10 / folder / shards datasets")
    g.add_argument("--data-path", help=".npz file for the npz dataset")
    g.add_argument("--train-size", type=int, help="use only the first N training images "
                                                  "(shapes: how many to draw, default 6000)")
    g.add_argument("--val-size", type=int, help="validation images: held out from npz / folder "
                                                "(default a tenth); shapes: how many (default 1000)")
    g.add_argument("--image-size", type=int, help="image side (shapes: default 32; folder: resize to it)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the built-in images and of "
                                                            "the validation hold-out (default 0)")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--stream", dest="stream", action="store_true", default=None,
                      help="decode the folder from disk as training goes (default: when it is large)")
    mode.add_argument("--in-memory", dest="stream", action="store_false", help="decode the whole folder up front")
    g.add_argument("--workers", type=int, help="processes decoding streamed images (default: cores - 1)")
    g.add_argument("--skip-bad-images", action="store_true", help="streamed: log and skip unreadable files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npxception", description="Xception from scratch: train, "
                                     "evaluate, predict, inspect and gradient-check.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = TRAIN_DEFAULTS

    t = sub.add_parser("train", help="train a model (default: small() on the built-in shapes)")
    _data_options(t, for_training=True)
    m = t.add_argument_group("model")
    m.add_argument("--preset", choices=PRESETS, default="small", help="XceptionConfig preset (default small)")
    m.add_argument("--width-multiplier", type=float, help="override the preset's channel scale")
    m.add_argument("--middle-blocks", type=int, help="override the preset's middle-flow blocks (0-8)")
    m.add_argument("--dropout", type=float, help="override the preset's dropout before the classifier")
    m.add_argument("--bn-momentum", type=float, default=TRAIN_BN_MOMENTUM,
                   help=f"batch-norm moving-average momentum (default {TRAIN_BN_MOMENTUM}; Keras and the "
                        "paper use 0.99, whose moving statistics need thousands of steps to settle)")
    m.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto (default: cuda when numba-cuda sees a GPU, else cpu), cpu (Numba), cuda, numpy")
    o = t.add_argument_group("optimization")
    o.add_argument("--epochs", type=int, default=d["epochs"])
    o.add_argument("--batch-size", type=int, default=d["batch_size"])
    o.add_argument("--optimizer", choices=OPTIMIZERS, default=d["optimizer"],
                   help=f"default {d['optimizer']}; the paper: sgd (ImageNet), rmsprop (JFT)")
    o.add_argument("--lr", type=float, default=d["lr"], help=f"peak learning rate (default {d['lr']})")
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--weight-decay", type=float, default=d["weight_decay"], help="L2 on kernels")
    o.add_argument("--schedule", choices=SCHEDULES, default=d["schedule"],
                   help="step: x--decay-rate every --decay-epochs (the paper: 0.94 every 2)")
    o.add_argument("--warmup-epochs", type=float, default=d["warmup_epochs"])
    o.add_argument("--decay-rate", type=float, default=0.94)
    o.add_argument("--decay-epochs", type=float, default=2.0)
    o.add_argument("--clip-norm", type=float, default=0.0, help="clip gradients to this global norm (0: off)")
    o.add_argument("--ema-decay", type=float, default=d["ema_decay"],
                   help="Polyak averaging of the weights for evaluation, e.g. 0.999 (0: off)")
    o.add_argument("--label-smoothing", type=float, default=0.0)
    o.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    o.add_argument("--seed", type=int, default=0, help="weights, shuffling, augmentation, dropout")
    r = t.add_argument_group("run")
    r.add_argument("--out", help="run directory (default runs/<timestamp>)")
    r.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR with its saved "
                                                   "settings (other options are ignored)")
    r.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch")
    r.add_argument("--max-steps", type=int, help="save and stop after K steps (resumable), for smoke runs")
    r.add_argument("--threads", type=int, help="CPU threads for Numba kernels and BLAS (default: all)")

    e = sub.add_parser("evaluate", help="loss, top-1 and top-5 of a checkpoint")
    e.add_argument("checkpoint", help="a run directory or its checkpoint.npz")
    _data_options(e, for_training=False)
    e.add_argument("--backend", choices=BACKENDS, help="default: the run's backend")
    e.add_argument("--batch-size", type=int, default=250)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--threads", type=int, help="CPU threads for Numba kernels and BLAS (default: all)")

    pr = sub.add_parser("predict", help="top-k classes of image files")
    pr.add_argument("checkpoint", help="a run directory or its checkpoint.npz")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top-k", type=int, default=3)
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


# --------------------------------------------------------------------------- shared pieces

def _data_spec(args, saved: dict | None = None) -> DataSpec:
    if args.dataset is None:
        if saved is None:
            raise CLIError("give --dataset")
        return DataSpec(**saved)
    return DataSpec(args.dataset, args.data_dir, args.data_path, args.train_size, args.val_size,
                    args.image_size, args.data_seed, args.stream, args.skip_bad_images)


def _model_config(args, train_data):
    from .models.xception import XceptionConfig

    changes = {"input_shape": train_data.image_shape, "num_classes": train_data.num_classes,
               "bn_momentum": args.bn_momentum}
    for name in ("width_multiplier", "middle_blocks", "dropout"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return getattr(XceptionConfig, args.preset)(**changes)


def _config_from_dict(d: dict):
    from .models.xception import XceptionConfig

    return XceptionConfig(**d)


def _load_run(checkpoint: str, backend: str | None):
    """(model with the weights used for evaluation, meta) from a run directory or checkpoint."""
    from .models.xception import Xception
    from .train import load_checkpoint

    groups, meta = load_checkpoint(checkpoint)
    if "model_config" not in meta:
        raise CLIError(f"{checkpoint}: this checkpoint does not record its model configuration")
    model = Xception(_config_from_dict(meta["model_config"]), backend=backend or meta["backend"],
                     seed=meta.get("seed", 0))
    weights = groups["model"]
    if "ema" in groups:  # the run evaluated its Polyak-averaged weights; so does this
        weights = {**weights, **groups["ema"]}
    model.load_state_dict(weights)
    return model, meta


# --------------------------------------------------------------------------- commands

def cmd_train(args) -> int:
    import dataclasses

    from .data import load_split, resolve_stream
    from .models.xception import Xception, XceptionConfig
    from .train import TrainConfig, Trainer, TrainingInterrupted, load_checkpoint

    if args.resume:
        groups, saved = load_checkpoint(args.resume)
        run_dir = Path(args.resume)
        run_dir = run_dir.parent if run_dir.is_file() else run_dir
        spec = DataSpec(**saved["data"])
        config = TrainConfig(**saved["train_config"])
        model_config = _config_from_dict(saved["model_config"])
        backend = saved["backend"]
        if saved["epoch"] >= config.epochs:
            raise CLIError(f"{run_dir}: the run already finished its {config.epochs} epochs")
    else:
        run_dir = Path(args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
        if (run_dir / "checkpoint.npz").exists():
            raise CLIError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                           "or choose another --out")
        spec = _data_spec(args)
        config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
            momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
            warmup_epochs=args.warmup_epochs, decay_rate=args.decay_rate, decay_epochs=args.decay_epochs,
            clip_norm=args.clip_norm, ema_decay=args.ema_decay, label_smoothing=args.label_smoothing,
            augment=not args.no_augment, seed=args.seed)
        backend = default_backend() if args.backend == "auto" else args.backend
        model_config = None
        spec = resolve_stream(spec)
        if spec.stream and spec.image_size is None:  # streamed images are cropped to the model's size
            spec = dataclasses.replace(spec, image_size=getattr(XceptionConfig, args.preset)().input_shape[0])
    train_data, val_data = load_split(spec, args.workers)
    if model_config is None:
        model_config = _model_config(args, train_data)
    model = Xception(model_config, backend=backend, seed=config.seed)
    meta = {"model_config": dataclasses.asdict(model_config), "backend": backend, "seed": config.seed,
            "data": spec.to_dict(), "class_names": list(train_data.class_names)}
    trainer = Trainer(model, train_data, val_data, config, run_dir, quiet=args.quiet, extra_meta=meta)
    if args.resume:
        trainer.restore(groups, saved)
    loading = f"streamed from disk, {train_data.workers} data workers" if spec.stream else "in memory"
    _say(args.quiet, f"{'resuming' if args.resume else 'training'} Xception "
                     f"({model.num_params()['trainable']:,} parameters) on {spec.dataset} ({loading}): "
                     f"{len(train_data)} training / {len(val_data)} validation images "
                     f"{train_data.image_shape}, backend {backend}; run directory {run_dir}")
    try:
        history = trainer.fit(args.max_steps)
    except TrainingInterrupted as e:
        print(f"npxception train: {e}. Continue with: npxception train --resume {run_dir}", file=sys.stderr)
        return 130
    if trainer.stopped_early:
        _say(args.quiet, f"stopped after --max-steps {args.max_steps}; continue with --resume {run_dir}")
        return 0
    last = history[-1]
    _say(args.quiet, f"done: validation top-1 {100 * last['val_top1']:.2f}%; checkpoint, metrics.jsonl "
                     f"and plots in {run_dir}")
    return 0


def cmd_evaluate(args) -> int:
    import dataclasses

    from .data import load_evaluation, load_split, resolve_stream
    from .train import evaluate

    model, meta = _load_run(args.checkpoint, args.backend)
    spec = _data_spec(args, meta["data"])
    if resolve_stream(spec).stream and spec.image_size is None:  # cropped to the model's size
        spec = dataclasses.replace(spec, image_size=model.config.input_shape[0])
    # No --dataset: the run's own validation split (for an .npz or folder, the images held out
    # from training); with --dataset: every image of the named data.
    data = load_split(spec, args.workers)[1] if args.dataset is None else load_evaluation(spec, args.workers)
    if data.image_shape != model.config.input_shape:
        raise CLIError(f"the model takes {model.config.input_shape} images; the dataset has "
                       f"{data.image_shape} (use --image-size)")
    if data.num_classes > model.config.num_classes:
        raise CLIError(f"the dataset has {data.num_classes} classes, the model only "
                       f"{model.config.num_classes}")
    result = evaluate(model, data, args.batch_size)
    confusion = result.pop("confusion")
    if args.json:
        print(json.dumps({**result, "dataset": spec.dataset, "confusion": confusion.tolist()}))
    else:
        print(f"{spec.dataset}: {result['count']} images, loss {result['loss']:.4f}, "
              f"top-1 {100 * result['top1']:.2f}%, top-5 {100 * result['top5']:.2f}%")
    return 0


def cmd_predict(args) -> int:
    from .data import preprocess, read_image

    model, meta = _load_run(args.checkpoint, args.backend)
    h, w, _ = model.config.input_shape
    if h != w:
        raise CLIError(f"predict needs a square input size, the model takes {h}x{w}")
    names = meta.get("class_names") or [str(i) for i in range(model.config.num_classes)]
    images = np.stack([read_image(path, h) for path in args.images])
    logits = model.predict(preprocess(images, model.dtype), batch_size=32).astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    k = max(1, min(args.top_k, probs.shape[1]))
    for path, p in zip(args.images, probs):
        top = np.argsort(-p)[:k]
        if args.json:
            print(json.dumps({"image": path, "top": [{"class": names[i], "index": int(i),
                                                      "probability": float(p[i])} for i in top]}))
        else:
            print(f"{path}: " + ", ".join(f"{names[i]} {100 * p[i]:.1f}%" for i in top))
    return 0


def cmd_summary(args) -> int:
    from .models.xception import Xception, XceptionConfig

    config = getattr(XceptionConfig, args.preset)()
    changes = {}
    if args.image_size is not None:
        changes["input_shape"] = (args.image_size, args.image_size, config.input_shape[2])
    if args.num_classes is not None:
        changes["num_classes"] = args.num_classes
    print(Xception(config.replace(**changes), backend="numpy").summary())
    return 0


def cmd_gradcheck(args) -> int:
    from .nn.check import gradcheck_layer
    from .opcheck import check_all_ops, format_table

    print(f"ops (float64, backend {args.backend}, central differences):")
    reports = check_all_ops(args.backend)
    print(format_table(reports, args.tol))
    ok = all(r.ok(args.tol) for r in reports.values())
    print(f"\nlayers (float64, backend {args.backend}): d(output)/d(input) and /d(each weight)")
    print(f"{'layer':<26} {'tensor':<34} {'max rel error':>14}")
    for name, (layer, x, training) in _layer_cases(args.backend).items():
        report = gradcheck_layer(layer, x, training=training)
        for tensor, error in report.errors.items():
            print(f"{name:<26} {tensor:<34} {error:>14.2e}  {'ok' if error <= args.tol else 'FAILED'}")
        ok &= report.ok(args.tol)
    print("\nall gradients agree" if ok else f"\nsome gradients differ by more than {args.tol:.0e}")
    return 0 if ok else 1


def _layer_cases(backend: str) -> dict:
    """name -> (float64 layer, input, training): every layer type, and one Xception block."""
    from . import nn

    rng = np.random.default_rng(0)
    f64 = {"backend": backend, "dtype": "float64"}
    x = rng.standard_normal((2, 5, 5, 3))

    def block():  # block 2's shape: separable conv, BN, max pool; shortcut 1x1 stride 2 conv + BN
        main = nn.Sequential("main", [nn.SeparableConv2D("sepconv", 3, 4, rng=rng, **f64),
                                      nn.BatchNorm("sepconv_bn", 4, **f64), nn.MaxPool2D("pool", **f64)],
                             **f64)
        shortcut = nn.Sequential("shortcut", [nn.Conv2D("conv", 3, 4, 1, stride=2, padding="same",
                                                        rng=rng, **f64), nn.BatchNorm("bn", 4, **f64)],
                                 **f64)
        return nn.Residual("block", main, shortcut, **f64)

    return {
        "Conv2D 3x3 s2 same": (nn.Conv2D("conv", 3, 4, 3, stride=2, padding="same", rng=rng, **f64), x, True),
        "DepthwiseConv2D x2": (nn.DepthwiseConv2D("depthwise", 3, 3, depth_multiplier=2, padding="same",
                                                  rng=rng, **f64), x, True),
        "PointwiseConv2D": (nn.PointwiseConv2D("pointwise", 3, 4, rng=rng, **f64), x, True),
        "SeparableConv2D elu": (nn.SeparableConv2D("sepconv", 3, 4, intermediate_activation="elu",
                                                   rng=rng, **f64), x, True),
        "BatchNorm training": (nn.BatchNorm("bn", 3, **f64), x, True),
        "BatchNorm inference": (nn.BatchNorm("bn", 3, **f64), x, False),
        "ReLU": (nn.ReLU("relu", **f64), x, True),
        "ELU": (nn.ELU("elu", **f64), x, True),
        "MaxPool2D 3x3 s2 same": (nn.MaxPool2D("pool", **f64), x, True),
        "GlobalAvgPool2D": (nn.GlobalAvgPool2D("avg_pool", **f64), x, True),
        "Dense": (nn.Dense("predictions", 3, 4, rng=rng, **f64), rng.standard_normal((2, 3)), True),
        "Dropout 0.3": (nn.Dropout("dropout", 0.3, seed=1, **f64), x, True),
        "Residual block": (block(), x, True),
    }


def _say(quiet: bool, line: str) -> None:
    print(line, file=sys.stdout if quiet else sys.stderr, flush=True)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "summary": cmd_summary, "gradcheck": cmd_gradcheck}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `npxception` command; returns the exit status."""
    from .train import CheckpointError, TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None:
            from .threads import set_num_threads

            set_num_threads(args.threads)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("npxception: interrupted", file=sys.stderr)
        return 130
    except (CLIError, DatasetError, CheckpointError, TrainingDiverged, ValueError, TypeError,
            RuntimeError, OSError) as e:
        if args.debug:
            raise
        print(f"npxception {args.command}: error: {e}", file=sys.stderr)
        return 1
