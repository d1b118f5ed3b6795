"""Evaluate a model on a dataset: mean loss, top-1 and top-5 accuracy, confusion matrix."""

from __future__ import annotations

import numpy as np

from ..data import Dataset, make_loader
from .metrics import confusion_matrix, topk_correct


def evaluate(model, data: Dataset, batch_size: int = 100, label_smoothing: float = 0.0) -> dict:
    """Inference-mode metrics over all of `data`.

    Returns {"loss", "top1", "top5", "count"} (accuracies as fractions) and "confusion", a (K, K)
    int array. The loss is the mean over images (batches weighted by their size), so the result
    does not depend on `batch_size` beyond float rounding. A streamed dataset that skips
    unreadable images is scored on the images it could read.
    """
    be = model.backend
    loss_sum, top1, top5 = 0.0, 0, 0
    predicted, seen = [], []
    for x, labels in make_loader(data, batch_size, dtype=_model_dtype(model)).epoch(0):
        logits = model.forward(be.to_device(x), False)
        check_labels(labels, int(logits.shape[1]), len(x), "evaluation labels")
        loss = be.softmax_cross_entropy(logits, be.to_device(labels), label_smoothing)
        loss_sum += float(be.to_numpy(loss)) * len(labels)
        scores = be.to_numpy(logits)
        top1 += topk_correct(scores, labels, 1)
        top5 += topk_correct(scores, labels, 5)
        predicted.append(scores.argmax(axis=1))
        seen.append(labels)
    n = sum(len(labels) for labels in seen)
    predicted = np.concatenate(predicted)
    # A model may predict a class the data has no image of (a validation shard without one class).
    classes = max(data.num_classes, int(predicted.max(initial=-1)) + 1)
    return {"loss": loss_sum / n, "top1": top1 / n, "top5": top5 / n, "count": n,
            "confusion": confusion_matrix(predicted, np.concatenate(seen), classes)}


def check_labels(labels: np.ndarray, num_classes: int, count: int, what: str = "labels") -> None:
    """Labels must be `count` integers in [0, num_classes) before the loss kernels index logits with them."""
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what} must be {count} integers, got dtype {labels.dtype} and shape {labels.shape}")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{what} must be in [0, {num_classes}) for a model of {num_classes} classes, got "
                         f"values in [{labels.min()}, {labels.max()}]")


def _model_dtype(model) -> np.dtype:
    return np.dtype(getattr(model, "dtype", np.float32))
