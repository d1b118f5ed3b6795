"""`npxception train`: a new run, or `--resume DIR` of an interrupted one."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from ..backends import default_backend
from ..data import DataSpec
from ..resources import check_fits
from ..train.config import TrainConfig
from .common import CLIError, say

# Options that change how this process runs, not what it computes: honoured on --resume.
RUN_OPTIONS = {"quiet", "threads", "resume", "bucket_mb", "workers", "max_steps"}
MODEL_OPTIONS = ("width_multiplier", "middle_blocks", "dropout", "bn_momentum")
# data option -> DataSpec field
DATA_OPTIONS = {"dataset": "dataset", "data_dir": "data_dir", "data_path": "data_path",
                "train_size": "train_size", "val_size": "val_size", "image_size": "image_size",
                "data_seed": "seed", "stream": "stream", "skip_bad_images": "skip_bad_images"}


def data_spec(args) -> DataSpec:
    return DataSpec(args.dataset, args.data_dir, args.data_path, args.train_size, args.val_size,
                    args.image_size, args.data_seed, args.stream, args.skip_bad_images)


def train_config(args) -> TrainConfig:
    """The TrainConfig of the parsed options: one flag per field, nothing copied by hand."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def model_config(args, train_data):
    from ..models.config import XceptionConfig

    changes = {"input_shape": train_data.image_shape, "num_classes": train_data.num_classes,
               "bn_momentum": args.bn_momentum}
    for name in ("width_multiplier", "middle_blocks", "dropout"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return getattr(XceptionConfig, args.preset)(**changes)


def estimated_model_bytes(config, batch_size: int, itemsize: int = 4, training: bool = True) -> float:
    """A rough upper estimate of what building (and training) a model of `config` allocates.

    Parameters: the paper's network has 7.9M weights outside the middle flow and 1.6M per middle
    block, all scaling with the square of the width; the classifier is width(2048) x num_classes.
    Training keeps each weight about five times (weight, gradient, two optimizer slots, average) and
    the activations of a batch: about 2,000 x width channels at the stem's resolution, per image.
    """
    m = config.width_multiplier
    body = m * m * (7.91e6 + 1.62e6 * config.middle_blocks)
    head = config.width(2048) * (config.num_classes + 1) if config.include_top else 0
    copies = 5 if training else 2
    total = (body + head) * itemsize * copies
    if training:
        h, w, _ = config.input_shape
        stem = 1 if config.small_input_stem else 4
        total += 1.5 * batch_size * h * w / stem * 2000 * m * itemsize
        total += 16 * config.num_classes ** 2  # the confusion matrix and its row rates
    return total


def check_model_fits(config, batch_size: int, training: bool = True) -> None:
    check_fits(estimated_model_bytes(config, batch_size, training=training),
               f"a {config.input_shape[0]}x{config.input_shape[1]} model with {config.num_classes} classes "
               f"at width {config.width_multiplier:g}" + (f" and batches of {batch_size}" if training else ""),
               "use a smaller --image-size, --width-multiplier or --batch-size, or fewer classes")


def _resume_conflicts(args, given: set[str], saved: dict, run_dir: Path) -> tuple[list[str], list[str]]:
    """(refused, ignored): the given options that contradict the checkpoint, and those that cannot
    apply to a run that already exists."""
    refused, ignored = [], []
    config, spec, model = saved["train_config"], saved.get("data", {}), saved.get("model_config", {})
    for name in sorted(given - RUN_OPTIONS):
        value, flag = getattr(args, name), "--" + name.replace("_", "-")
        if name in config:
            before = config[name]
        elif name in DATA_OPTIONS:
            before = spec.get(DATA_OPTIONS[name])
            if name in ("data_dir", "data_path") and value is not None:
                value = str(Path(value).expanduser().resolve())
        elif name in MODEL_OPTIONS:
            before = model.get(name)
        elif name == "backend":
            before = saved.get("backend")
            value = before if value == "auto" else value
        elif name == "out":
            before, value = str(run_dir.resolve()), str(Path(value).resolve())
        else:  # --preset: the model is rebuilt from the checkpoint's configuration
            ignored.append(flag)
            continue
        if name == "augment":
            flag = "--no-augment"
        if value != before:
            refused.append(f"{flag} {value} (the checkpoint has {before})")
    return refused, ignored


def _resume(args, given: set[str]):
    from ..models.config import XceptionConfig
    from ..train import load_checkpoint

    groups, saved = load_checkpoint(args.resume)
    run_dir = Path(args.resume)
    run_dir = run_dir.parent if run_dir.is_file() else run_dir
    for key in ("train_config", "model_config", "data", "backend", "epoch"):
        if key not in saved:
            raise CLIError(f"{run_dir}: the checkpoint does not record its {key.replace('_', ' ')}; "
                           "it cannot be resumed")
    config = TrainConfig.from_dict(saved["train_config"])
    if saved["epoch"] >= config.epochs:
        raise CLIError(f"{run_dir}: the run already finished its {config.epochs} epochs")
    refused, ignored = _resume_conflicts(args, given, saved, run_dir)
    if refused:
        raise CLIError(f"--resume continues {run_dir} with its own settings; these options contradict them: "
                       f"{'; '.join(refused)}. Leave them out, or start a new run with --out")
    if ignored:
        print(f"npxception train: note: {', '.join(ignored)} ignored on --resume (the checkpoint's "
              "settings are used)", file=sys.stderr)
    return groups, saved, run_dir, DataSpec(**saved["data"]), config, XceptionConfig(**saved["model_config"])


def cmd_train(args, given: set[str]) -> int:
    from ..distributed import init

    dist = init(sync_bn=args.sync_bn, bucket_mb=args.bucket_mb, reduction=args.reduction)
    if dist is None:  # one process: mpi4py is never imported
        return _train(args, given, None)
    with dist.guard():  # a rank that fails ends the job with a message naming it
        return _train(args, given, dist)


def _is_root(dist) -> bool:
    return dist is None or dist.is_root


def _resume_distributed(dist, saved: dict, run_dir: Path) -> None:
    """Resume with the run's own sync-BN and reduction; another process count only with sync-BN."""
    before = saved.get("distributed", {"world_size": 1, "sync_bn": False})
    dist.sync_bn = bool(before.get("sync_bn", False))
    dist.reduction = before.get("reduction", dist.reduction)
    if before["world_size"] != dist.size and not dist.sync_bn:
        raise CLIError(f"{run_dir} was trained on {before['world_size']} process(es) without --sync-bn; "
                       f"on {dist.size} its batch-norm statistics would change: resume it on "
                       f"{before['world_size']}")


def _train(args, given: set[str], dist) -> int:
    from ..data import load_split, resolve_stream
    from ..models.xception import Xception
    from ..train import Trainer, TrainingInterrupted
    from ..data import describe_dataset
    from ..train.resume import check_same_data

    if args.resume:
        groups, saved, run_dir, spec, config, model_cfg = _resume(args, given)
        backend = saved["backend"]
        if dist is not None:
            _resume_distributed(dist, saved, run_dir)
    else:
        run_dir = Path(args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
        if dist is not None:  # the ranks may start in different seconds: rank 0's name
            run_dir = dist.bcast_object(run_dir)
        if (run_dir / "checkpoint.npz").exists():
            raise CLIError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                           "or choose another --out")
        spec, config = resolve_stream(data_spec(args)), train_config(args)
        if spec.stream and spec.image_size is None:  # streamed images are cropped to the model's size
            from ..models.config import XceptionConfig

            spec = dataclasses.replace(spec, image_size=getattr(XceptionConfig, args.preset)().input_shape[0])
        backend = default_backend() if args.backend == "auto" else args.backend
        model_cfg = None
    train_data, val_data = load_split(spec, args.workers)
    if args.resume:  # before the model is built: a class added to the data is refused by name
        check_same_data(saved, {"train": describe_dataset(train_data), "val": describe_dataset(val_data)})
    if model_cfg is None:
        model_cfg = model_config(args, train_data)
    check_model_fits(model_cfg, config.batch_size)
    if dist is not None and backend == "cuda":
        dist.select_gpu()  # rank r: GPU (local rank mod GPUs on this host)
    model = Xception(model_cfg, backend=backend, seed=config.seed)
    meta = {"model_config": dataclasses.asdict(model_cfg), "backend": backend, "seed": config.seed,
            "data": spec.to_dict(), "class_names": list(train_data.class_names)}
    if dist is not None:
        meta["distributed"] = dist.describe()
    root = _is_root(dist)
    trainer = Trainer(model, train_data, val_data, config, run_dir, quiet=args.quiet or not root,
                      extra_meta=meta, distributed=dist)
    if args.resume:
        trainer.restore(groups, saved)
    tell = say if root else (lambda quiet, line: None)
    world = "" if dist is None else f" on {dist.size} processes{' with sync-BN' if dist.sync_bn else ''}"
    loading = f"streamed from disk, {train_data.workers} data workers" if spec.stream else "in memory"
    tell(args.quiet, f"{'resuming' if args.resume else 'training'} Xception "
                     f"({model.num_params()['trainable']:,} parameters) on {spec.dataset} ({loading}): "
                     f"{len(train_data)} training / {len(val_data)} validation images "
                     f"{train_data.image_shape}, backend {backend}{world}; run directory {run_dir}")
    try:
        history = trainer.fit(args.max_steps)
    except TrainingInterrupted as e:
        if root:
            print(f"npxception train: {e}. Continue with: npxception train --resume {run_dir}", file=sys.stderr)
        return 128 + (e.signal or 2)  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
    if trainer.stopped_early:
        tell(args.quiet, f"stopped after --max-steps {args.max_steps}; continue with --resume {run_dir}")
        return 0
    last = history[-1]
    tell(args.quiet, f"done: validation top-1 {100 * last['val_top1']:.2f}%; checkpoint, metrics.jsonl "
                     f"and plots in {run_dir}")
    return 0
