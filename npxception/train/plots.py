"""The run's pictures: learning curves and the confusion matrix, as PNGs.

Figures are built with `matplotlib.figure.Figure` directly, not through pyplot: that needs no
display and leaves the process's matplotlib backend alone (inline plots in a notebook keep working).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plot_learning_curves(history: Sequence[dict], path) -> None:
    """Loss and top-1 accuracy per epoch, training and validation, side by side."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [100 * h["train_top1"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * h["val_top1"] for h in history], "o-", label="validation top-1")
    ax_acc.plot(epochs, [100 * h["val_top5"] for h in history], "--", label="validation top-5")
    ax_acc.set(xlabel="epoch", ylabel="%", title="accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# The figure has a fixed size in pixels whatever the class count: cells with counts and names up to
# ANNOTATED_CLASSES, a heatmap up to HEATMAP_BINS classes, and beyond that a heatmap of classes
# grouped into HEATMAP_BINS consecutive bins, beside a list of the most confused pairs.
ANNOTATED_CLASSES = 20
HEATMAP_BINS = 200
TOP_PAIRS = 15


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path, title: str = "") -> None:
    """Row-normalised confusion matrix (true class down, predicted across), counts in the cells.

    Many classes get a heatmap (grouped into bins beyond HEATMAP_BINS classes) and the most
    confused pairs, at the same figure size: 1,000 classes draw as quickly as 10.
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    k = len(class_names)
    if matrix.shape != (k, k):
        raise ValueError(f"matrix must be ({k}, {k}) for {k} class names, got shape {matrix.shape}")
    title = title or "confusion matrix (validation)"
    if k <= ANNOTATED_CLASSES:
        size = max(4.0, 0.5 * k + 2)
        fig = Figure(figsize=(size, size))
        ax = fig.subplots()
        rates = _row_rates(matrix)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), class_names, rotation=45, ha="right")
        ax.set_yticks(range(k), class_names)
        ax.set(xlabel="predicted", ylabel="true", title=title)
    else:
        fig = Figure(figsize=(15, 8))
        ax, ax_pairs = fig.subplots(1, 2, width_ratios=(1, 1))
        bins = min(k, HEATMAP_BINS)
        edges = np.linspace(0, k, bins + 1).astype(np.int64)[:-1]
        grouped = np.add.reduceat(np.add.reduceat(matrix, edges, axis=0), edges, axis=1)
        ax.imshow(_row_rates(grouped), cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        unit = "class" if bins == k else f"class index (bins of ~{k / bins:.0f})"
        ax.set(xlabel=f"predicted {unit}", ylabel=f"true {unit}", title=title)
        ax_pairs.axis("off")
        ax_pairs.text(0, 1, _confused_pairs(matrix, class_names), va="top", family="monospace", fontsize=9,
                      transform=ax_pairs.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _row_rates(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)


def _confused_pairs(matrix: np.ndarray, class_names: Sequence[str]) -> str:
    """The TOP_PAIRS largest off-diagonal counts, as text lines."""
    off = np.array(matrix, dtype=np.int64)
    np.fill_diagonal(off, 0)
    flat = off.ravel()
    count = min(TOP_PAIRS, int(np.count_nonzero(flat)))
    lines = [f"most confused pairs (of {int(matrix.sum())} images)", ""]
    if count == 0:
        return "\n".join([*lines, "none: every image classified correctly"])
    top = np.argpartition(-flat, count - 1)[:count]
    top = top[np.argsort(-flat[top], kind="stable")]
    for index in top:
        true, predicted = divmod(int(index), matrix.shape[1])
        lines.append(f"{flat[index]:>6}  {_short(class_names[true])} -> {_short(class_names[predicted])}")
    return "\n".join(lines)


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[:width - 1] + "~"
