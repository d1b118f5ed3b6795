"""Classification metrics (top-k accuracy, confusion matrix) and the JSON-lines metrics log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows of logits (N, K) have their label among the k largest scores."""
    k = min(k, logits.shape[1])
    top = np.argpartition(logits, -k, axis=1)[:, -k:]
    return int((top == labels[:, None]).any(axis=1).sum())


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


class MetricsLog:
    """Appends one JSON object per line to `path` (metrics.jsonl): easy to tail, grep and load."""

    def __init__(self, path):
        self.path = Path(path)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
