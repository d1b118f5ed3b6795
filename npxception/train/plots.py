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


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path, title: str = "") -> None:
    """Row-normalised confusion matrix (true class down, predicted across), counts in the cells."""
    from matplotlib.figure import Figure

    k = len(class_names)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * k + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), class_names, rotation=45, ha="right")
        ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
