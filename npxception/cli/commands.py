"""`npxception evaluate | predict | summary | gradcheck`."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from ..data import DataSpec
from .common import CLIError, load_run
from .train import check_model_fits


def cmd_evaluate(args) -> int:
    from ..data import load_evaluation, load_split, resolve_stream
    from ..train import evaluate

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, meta = load_run(args.checkpoint, args.backend)
    if args.dataset is None:
        # No --dataset: the run's own validation split (for an .npz or folder, the images held out
        # from training); with --dataset: every image of the named data.
        if "data" not in meta:
            raise CLIError(f"{args.checkpoint}: the checkpoint does not record its data; give --dataset")
        spec = DataSpec(**meta["data"])
    else:
        spec = DataSpec(args.dataset, args.data_dir, args.data_path, args.train_size, args.val_size,
                        args.image_size, args.data_seed or 0, args.stream, args.skip_bad_images)
    if resolve_stream(spec).stream and spec.image_size is None:  # cropped to the model's size
        spec = dataclasses.replace(spec, image_size=model.config.input_shape[0])
    data = load_split(spec, args.workers)[1] if args.dataset is None else load_evaluation(spec, args.workers)
    if data.image_shape != model.config.input_shape:
        resize = ("give --image-size to resize them" if spec.dataset in ("folder", "shapes")
                  else "resize the images to the model's size" if spec.dataset == "npz"
                  else "CIFAR-10 is 32x32 only")
        raise CLIError(f"the model takes {model.config.input_shape} images; the dataset has "
                       f"{data.image_shape} ({resize})")
    if data.num_classes > model.config.num_classes:
        raise CLIError(f"the dataset has {data.num_classes} classes, the model only "
                       f"{model.config.num_classes}")
    result = evaluate(model, data, args.batch_size)
    confusion = result.pop("confusion")
    names = _class_names(data, meta, model.config.num_classes)
    per_class = {name: (float(confusion[k, k] / confusion[k].sum()) if confusion[k].sum() else None)
                 for k, name in enumerate(names[:len(confusion)])}
    if args.json:
        print(json.dumps({**result, "dataset": spec.dataset, "class_names": names, "per_class_top1": per_class,
                          "confusion": confusion.tolist()}))
    else:
        print(f"{spec.dataset}: {result['count']} images, loss {result['loss']:.4f}, "
              f"top-1 {100 * result['top1']:.2f}%, top-5 {100 * result['top5']:.2f}%")
        print("per class top-1: " + ", ".join(f"{name} {'-' if acc is None else f'{100 * acc:.1f}%'}"
                                              for name, acc in per_class.items()))
    return 0


def _class_names(data, meta: dict, num_classes: int) -> list[str]:
    """The data's class names, or the run's (the checkpoint records them) where the data has none of its own."""
    own = [str(name) for name in data.class_names]
    saved = [str(name) for name in meta.get("class_names") or []]
    if saved and own == [str(k) for k in range(len(own))] and len(saved) >= len(own):
        return saved  # shards without a classes.txt: numbered, where the run knew the names
    return own


def cmd_predict(args) -> int:
    from ..data import preprocess, read_image

    if args.top_k < 1:
        raise CLIError(f"--top-k must be >= 1, got {args.top_k}")
    model, meta = load_run(args.checkpoint, args.backend)
    h, w, _ = model.config.input_shape
    if h != w:
        raise CLIError(f"predict needs a square input size, the model takes {h}x{w}")
    names = meta.get("class_names") or [str(i) for i in range(model.config.num_classes)]
    images = np.stack([read_image(path, h) for path in args.images])
    logits = model.predict(preprocess(images, model.dtype), batch_size=32).astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    k = min(args.top_k, probs.shape[1])
    for path, p in zip(args.images, probs):
        top = np.argsort(-p)[:k]
        if args.json:
            print(json.dumps({"image": path, "top": [{"class": names[i], "index": int(i),
                                                      "probability": float(p[i])} for i in top]}))
        else:
            print(f"{path}: " + ", ".join(f"{names[i]} {100 * p[i]:.1f}%" for i in top))
    return 0


def cmd_summary(args) -> int:
    from ..models.config import XceptionConfig
    from ..models.xception import Xception

    config = getattr(XceptionConfig, args.preset)()
    changes = {}
    if args.image_size is not None:
        changes["input_shape"] = (args.image_size, args.image_size, config.input_shape[2])
    if args.num_classes is not None:
        changes["num_classes"] = args.num_classes
    config = config.replace(**changes)
    check_model_fits(config, 1, training=False)
    print(Xception(config, backend="numpy").summary())
    return 0


def cmd_gradcheck(args) -> int:
    from ..opcheck import check_all_layers, check_all_ops, format_table

    print(f"ops (float64, backend {args.backend}, central differences):")
    reports = check_all_ops(args.backend)
    print(format_table(reports, args.tol))
    ok = all(r.ok(args.tol) for r in reports.values())
    print(f"\nlayers (float64, backend {args.backend}): d(output)/d(input) and /d(each weight)")
    print(f"{'layer':<26} {'tensor':<34} {'max rel error':>14}")
    for name, report in check_all_layers(args.backend).items():
        for tensor, error in report.errors.items():
            print(f"{name:<26} {tensor:<34} {error:>14.2e}  {'ok' if error <= args.tol else 'FAILED'}")
        ok &= report.ok(args.tol)
    print("\nall gradients agree" if ok else f"\nsome gradients differ by more than {args.tol:.0e}")
    return 0 if ok else 1
