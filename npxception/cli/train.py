"""`npxception train`: a new run, or `--resume DIR` of an interrupted one."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..backends import default_backend
from ..data import DataSpec
from ..resources import check_fits
from ..train.config import TrainConfig
from .common import CLIError, error_line, say
from .options import check_ranges, set_threads

# Options that change how this process runs, not what it computes: honoured on --resume.
RUN_OPTIONS = {"quiet", "threads", "resume", "bucket_mb", "workers", "max_steps", "comm_timeout"}
# Options a resume may turn on although they change what the run computes, because they are the way
# forward from the error that stopped it (an unreadable image advises --skip-bad-images). The run
# records them: its first line, the checkpoint's data and every later epoch's metrics say so.
RESUME_SWITCHES = {"skip_bad_images"}
MODEL_OPTIONS = ("width_multiplier", "middle_blocks", "dropout", "bn_momentum")
# data option -> DataSpec field
DATA_OPTIONS = {"dataset": "dataset", "data_dir": "data_dir", "data_path": "data_path",
                "train_size": "train_size", "val_size": "val_size", "image_size": "image_size",
                "data_seed": "seed", "stream": "stream", "skip_bad_images": "skip_bad_images",
                "val_data_dir": "val_data_dir"}


def data_spec(args) -> DataSpec:
    return DataSpec(args.dataset, args.data_dir, args.data_path, args.train_size, args.val_size,
                    args.image_size, args.data_seed, args.stream, args.skip_bad_images,
                    getattr(args, "val_data_dir", None))


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
    for name in sorted(given - RUN_OPTIONS - RESUME_SWITCHES):
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


@dataclass
class _Resumed:
    """What --resume reads from a run directory."""

    groups: dict
    saved: dict
    run_dir: Path
    spec: DataSpec
    config: TrainConfig
    model_config: object
    notes: list[str] = field(default_factory=list)
    skip_turned_on: bool = False


def _resume(args, given: set[str]) -> _Resumed:
    """The checkpoint of --resume DIR, its settings, and the options that cannot apply to it."""
    from ..models.config import XceptionConfig
    from ..train import load_checkpoint
    from ..train.checkpoint import checkpoint_format

    groups, saved = load_checkpoint(args.resume)
    run_dir = Path(args.resume)
    run_dir = run_dir.parent if run_dir.is_file() else run_dir
    checkpoint_format(saved, str(run_dir))
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
    resumed = _Resumed(groups, saved, run_dir, DataSpec(**saved["data"]), config,
                       XceptionConfig(**saved["model_config"]))
    if ignored:
        resumed.notes.append(f"{', '.join(ignored)} ignored on --resume (the checkpoint's settings are used)")
    if "skip_bad_images" in given and args.skip_bad_images and not resumed.spec.skip_bad_images:
        resumed.spec = dataclasses.replace(resumed.spec, skip_bad_images=True)
        resumed.skip_turned_on = True
    return resumed


def cmd_train(args, given: set[str]) -> int:
    from ..distributed import init

    dist = init(sync_bn=args.sync_bn, bucket_mb=args.bucket_mb, reduction=args.reduction,
                comm_timeout=args.comm_timeout)
    if dist is None:  # one process: mpi4py is never imported
        return _train(args, given, None)
    with dist.guard():  # a rank that fails ends the job with a message naming it
        return _train(args, given, dist)


def _is_root(dist) -> bool:
    return dist is None or dist.is_root


def _resume_world(dist, resumed: _Resumed) -> None:
    """The one rule for every number of processes (train/resume.py check_same_world); the run keeps
    its own reduction (resumed_reduction)."""
    from ..train.resume import check_same_world, resumed_reduction

    size = 1 if dist is None else dist.size
    sync_bn, note = check_same_world(resumed.saved, size, resumed.config.batch_size, resumed.run_dir)
    if dist is not None:
        dist.sync_bn = sync_bn
        dist.reduction, reduction_note = resumed_reduction(resumed.saved, dist.reduction, resumed.run_dir)
        resumed.notes += [reduction_note] if reduction_note else []
    if note:
        resumed.notes.append(note)


@dataclass
class _Job:
    """A trainer ready for its first step, and what the run says before it."""

    trainer: object
    run_dir: Path
    first_line: str
    notes: list[str]


def _train(args, given: set[str], dist) -> int:
    run_dir = _new_run_dir(args, dist)
    try:
        job = _set_up(args, given, dist, run_dir)
    except Exception as error:
        if dist is not None:  # the other ranks wait in the agreement below: meet them with the error
            dist.agree_set_up(error_line(error))  # raises AgreedError on every rank
        raise
    if dist is not None:
        dist.agree_set_up(None)
    return _fit(args, job, dist)


def _new_run_dir(args, dist) -> Path | None:
    """A new run's directory (None on --resume), rank 0's on every rank: the ranks may start in
    different seconds. The one collective before the set-up, so every rank calls it, resuming or
    not, before anything that can fail; a rank whose rank 0 resumes keeps its own name, and the
    comparison before the first step tells them apart."""
    run_dir = None if args.resume else Path(args.out) if args.out else default_run_dir(Path("runs"))
    if dist is not None:
        run_dir = dist.bcast_object(run_dir) or run_dir
    return run_dir


def default_run_dir(root: Path) -> Path:
    """root/<date-time>, or root/<date-time>-2, -3, ... when a run started in the same second took it
    (two runs never share a directory: the run lock refuses the second of two that race for a name)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = root / stamp, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate


def _new_run(args, run_dir: Path):
    """(spec, config, backend) of a fresh run from the options."""
    from ..data import resolve_stream

    if (run_dir / "checkpoint.npz").exists():
        raise CLIError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                       "or choose another --out")
    spec, config = resolve_stream(data_spec(args)), train_config(args)
    if spec.stream and spec.image_size is None:  # streamed images are cropped to the model's size
        from ..models.config import XceptionConfig

        spec = dataclasses.replace(spec, image_size=getattr(XceptionConfig, args.preset)().input_shape[0])
    backend = default_backend() if args.backend == "auto" else args.backend
    return spec, config, backend


def _set_up(args, given: set[str], dist, run_dir: Path | None) -> _Job:
    """Everything before the first step: options, data, model, trainer, and the checkpoint on --resume."""
    from ..data import describe_dataset, load_split
    from ..models.xception import Xception
    from ..train import Trainer
    from ..train.resume import check_same_data

    check_ranges(args)
    set_threads(args)
    resumed = None
    if args.resume:
        resumed = _resume(args, given)
        _resume_world(dist, resumed)
        run_dir, spec, config, model_cfg = resumed.run_dir, resumed.spec, resumed.config, resumed.model_config
        backend = resumed.saved["backend"]
    else:
        (spec, config, backend), model_cfg = _new_run(args, run_dir), None
    loading = []  # the one-line account of an up-front decode, for the first line
    train_data, val_data = load_split(spec, args.workers, progress=not args.quiet and _is_root(dist),
                                      report=loading.append)
    if resumed:  # before the model is built: a class added to the data is refused by name
        check_same_data(resumed.saved, {"train": describe_dataset(train_data), "val": describe_dataset(val_data)})
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
    trainer = Trainer(model, train_data, val_data, config, run_dir, quiet=args.quiet or not _is_root(dist),
                      extra_meta=meta, distributed=dist)
    if resumed:
        trainer.restore(resumed.groups, resumed.saved)
    first = _first_line(trainer, spec, resumed, dist)
    return _Job(trainer, run_dir, "\n".join([*loading, first]), resumed.notes if resumed else [])


def _first_line(trainer, spec: DataSpec, resumed: _Resumed | None, dist) -> str:
    """What the run says before its first step: what trains on what, where, and how."""
    train_data, val_data = trainer.loader.data, trainer.val_data
    world = "" if dist is None else f" on {dist.size} processes{' with sync-BN' if dist.sync_bn else ''}"
    loading = f"streamed from disk, {train_data.workers} data workers" if spec.stream else "in memory"
    if spec.val_data_dir is not None:
        loading += f", validation images from {spec.val_data_dir}"
    if spec.skip_bad_images:
        loading += ", skipping unreadable images" + (" from this resume on" if resumed and resumed.skip_turned_on
                                                      else "")
    return (f"{'resuming' if resumed else 'training'} Xception ({trainer.model.num_params()['trainable']:,} "
            f"parameters) on {spec.dataset} ({loading}): {len(train_data)} training / {len(val_data)} validation "
            f"images {train_data.image_shape}, backend {trainer.extra_meta['backend']}{world}; run directory "
            f"{trainer.run_dir}")


def cpu_kernels_cached() -> bool:
    """Whether Numba's on-disk cache holds any of the cpu backend's kernels: none after a fresh install
    or clone, when the first training step compiles them all (an index file per cached kernel)."""
    import numba

    from ..backends import cpu

    folder = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else Path(cpu.__file__).parent / "__pycache__"
    return any(folder.rglob("*.nbi"))


def _fit(args, job: _Job, dist) -> int:
    from ..train import TrainingInterrupted

    tell = say if _is_root(dist) else (lambda quiet, line: None)
    tell(args.quiet, job.first_line)
    for note in job.notes:  # on stderr, like warnings, also with --quiet
        tell(False, f"npxception train: note: {note}")
    if job.trainer.extra_meta["backend"] == "cpu" and not cpu_kernels_cached():
        # Said before the step that compiles, or the first epoch looks like a hang.
        tell(args.quiet, "compiling the cpu backend's kernels: first run only (Numba caches them), the first "
                         "step takes about a minute on 2 cores")
    run_dir, trainer = job.run_dir, job.trainer
    try:
        history = trainer.fit(args.max_steps)
    except TrainingInterrupted as e:
        tell(False, f"npxception train: {e}. Continue with: npxception train --resume {run_dir}")
        return 128 + (e.signal or 2)  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
    if trainer.stopped_early:
        tell(args.quiet, f"stopped after --max-steps {args.max_steps}; continue with --resume {run_dir}")
        return 0
    last = history[-1]
    tell(args.quiet, f"done: validation top-1 {100 * last['val_top1']:.2f}%; checkpoint, metrics.jsonl "
                     f"and plots in {run_dir}")
    return 0
