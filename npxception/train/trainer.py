"""The training loop: epochs of steps, evaluation, metrics, plots, checkpoints, exact resume.

One step: forward (training mode) -> softmax cross-entropy -> backward -> optional gradient
clipping -> optimizer update -> EMA update. Everything on arrays stays in the model's backend;
only the loss and the logits (for accuracy) come back to the host.

Resuming is exact: a checkpoint holds the weights (with batch-norm statistics), the optimizer's
slots and step count, the EMA, the dropout counter, the epoch and the batch within it, and the
running sums of the epoch's training metrics. The loader's batches are a pure function of
(seed, epoch, batch), so a resumed run performs exactly the same arithmetic as an uninterrupted
one and ends with bit-identical weights.

Run directory: checkpoint.npz, metrics.jsonl (one line per epoch), learning_curves.png,
confusion_matrix.png.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import Dataset, make_loader
from .checkpoint import save_checkpoint
from .clipping import clip_by_global_norm
from .ema import EMA
from .evaluate import evaluate
from .metrics import MetricsLog, topk_correct
from .optimizers import make_optimizer
from .plots import plot_confusion_matrix, plot_learning_curves
from .schedules import Schedule

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: a checkpoint of the last completed step was saved, training can be resumed."""


@dataclass
class TrainConfig:
    """Everything that decides the arithmetic of a run (saved in the checkpoint)."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"          # sgd | nesterov | rmsprop | adam | adamw
    lr: float = 0.045
    momentum: float = 0.9
    weight_decay: float = 1e-5
    schedule: str = "step"          # step (x decay_rate every decay_epochs) | cosine | constant
    warmup_epochs: float = 0.0
    decay_rate: float = 0.94
    decay_epochs: float = 2.0
    clip_norm: float = 0.0          # 0: no clipping
    ema_decay: float = 0.0          # 0: no Polyak averaging
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    eval_batch_size: int = 250

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.clip_norm < 0:
            raise ValueError(f"clip_norm must be >= 0 (0 disables clipping), got {self.clip_norm}")


class Trainer:
    """Trains `model` on `train_data`, evaluating on `val_data` after every epoch.

    `run_dir` receives the checkpoint, metrics and plots; `extra_meta` (JSON-serialisable: the
    model configuration, the dataset's description) is stored in every checkpoint so that
    `npxception evaluate` and `--resume` can rebuild the run.
    """

    def __init__(self, model, train_data: Dataset, val_data: Dataset, config: TrainConfig, run_dir,
                 *, quiet: bool = False, extra_meta: dict | None = None):
        self.model, self.config = model, config
        self.backend = model.backend
        self.val_data = val_data
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.quiet, self.extra_meta = quiet, dict(extra_meta or {})
        dtype = np.dtype(getattr(model, "dtype", np.float32))
        self.loader = make_loader(train_data, config.batch_size, shuffle=True, augment=config.augment,
                                  seed=config.seed, dtype=dtype)
        self.optimizer = make_optimizer(config.optimizer, self.backend, momentum=config.momentum,
                                        weight_decay=config.weight_decay)
        self.schedule = Schedule(config.lr, config.schedule, config.epochs, config.warmup_epochs,
                                 config.decay_rate, config.decay_epochs)
        self.ema = EMA(self.backend, config.ema_decay) if config.ema_decay > 0 else None
        self.log = MetricsLog(self.run_dir / METRICS)
        self.epoch, self.batch = 0, 0
        self.running = _fresh_running()
        self.history: list[dict] = []
        self._stop = threading.Event()

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def request_stop(self) -> None:
        """Stop after the current step, save a checkpoint and raise TrainingInterrupted (Ctrl-C)."""
        self._stop.set()

    # ------------------------------------------------------------------ the loop

    def fit(self, max_steps: int | None = None) -> list[dict]:
        """Train until `config.epochs`, or save and return after `max_steps` steps of this call
        (a smoke run; `stopped_early` is then True and the run resumes from the checkpoint).
        Returns the history (one dict per finished epoch)."""
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if not self.history and self.batch == 0:  # a fresh run: no metrics of an earlier one
            self.log.path.write_text("")
        self._steps_left, self.stopped_early = max_steps, False
        previous = _install_sigint(self.request_stop)
        try:
            while self.epoch < self.config.epochs and self._steps_left != 0:
                if not self._train_epoch():
                    break
                self._end_epoch()
            if self._steps_left == 0 and self.epoch < self.config.epochs:
                self._save()
                self.stopped_early = True
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.history

    def _train_epoch(self) -> bool:
        """The rest of the epoch; False if it stopped at the step limit before the epoch's end."""
        from tqdm import tqdm

        cfg, epoch, steps = self.config, self.epoch, len(self.loader)
        bar = tqdm(total=steps, initial=self.batch, disable=self.quiet, unit="batch", leave=True,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", dynamic_ncols=True)
        try:
            for x, labels in self.loader.epoch(epoch, start=self.batch):
                if self._stop.is_set():
                    self._save()
                    raise TrainingInterrupted(
                        f"interrupted in epoch {epoch + 1} after {self.batch} of {steps} batches; "
                        f"checkpoint saved to {self.checkpoint_path}")
                start = time.perf_counter()
                loss, correct = self._step(x, labels, epoch + (self.batch + 1) / steps)
                r = self.running
                r["seconds"] += time.perf_counter() - start
                r["loss_sum"] += loss * len(labels)
                r["correct"] += correct
                r["seen"] += len(labels)
                self.batch += 1
                if self._steps_left is not None:
                    self._steps_left -= 1
                bar.update(1)
                bar.set_postfix(loss=f"{r['loss_sum'] / r['seen']:.4f}",
                                acc=f"{r['correct'] / r['seen']:.3f}",
                                img_s=f"{r['seen'] / max(r['seconds'], 1e-9):.0f}", refresh=False)
                if self._steps_left == 0 and self.batch < steps:
                    return False
        finally:
            bar.close()
        return True

    def _step(self, x: np.ndarray, labels: np.ndarray, progress: float) -> tuple[float, int]:
        """One optimisation step; returns (loss, number of correct top-1 predictions)."""
        be, cfg, model = self.backend, self.config, self.model
        labels_dev = be.to_device(labels)
        logits = model.forward(be.to_device(x), True)
        loss = float(be.to_numpy(be.softmax_cross_entropy(logits, labels_dev, cfg.label_smoothing)))
        if not math.isfinite(loss):
            kept = (f"the last good checkpoint ({self.checkpoint_path}) is kept" if self.history
                    else "no checkpoint was written yet")
            raise TrainingDiverged(
                f"loss became {loss} at epoch {self.epoch + 1}, batch {self.batch + 1}; training "
                f"stopped and {kept}. Try a smaller --lr, a warm-up (--warmup-epochs) or "
                "gradient clipping (--clip-norm).")
        model.backward(be.softmax_cross_entropy_backward(1.0, logits, labels_dev, cfg.label_smoothing))
        params = model.trainable()
        if cfg.clip_norm > 0:
            clip_by_global_norm(params, cfg.clip_norm, be)
        self.optimizer.step(params, self.schedule(progress))
        if self.ema is not None:
            self.ema.update(params)
        return loss, topk_correct(be.to_numpy(logits), labels, 1)

    def _end_epoch(self) -> None:
        r = self.running
        val = self.evaluate()
        record = {
            "epoch": self.epoch + 1,
            "train_loss": r["loss_sum"] / r["seen"],
            "train_top1": r["correct"] / r["seen"],
            "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
            "lr": self.schedule(self.epoch + 1.0),
            "images_per_sec": r["seen"] / max(r["seconds"], 1e-9),
            "train_seconds": r["seconds"],
            "evaluated_with": "ema" if self.ema is not None else "weights",
        }
        self.history.append(record)
        self.log.write(record)
        self.epoch, self.batch, self.running = self.epoch + 1, 0, _fresh_running()
        self._save()
        plot_learning_curves(self.history, self.run_dir / "learning_curves.png")
        plot_confusion_matrix(val["confusion"], self.val_data.class_names,
                              self.run_dir / "confusion_matrix.png",
                              title=f"validation, epoch {record['epoch']}: top-1 {100 * val['top1']:.1f}%")
        self._print(f"epoch {record['epoch']}/{self.config.epochs}: train loss {record['train_loss']:.4f} "
                    f"acc {100 * record['train_top1']:.1f}% | val loss {val['loss']:.4f} "
                    f"top-1 {100 * val['top1']:.2f}% top-5 {100 * val['top5']:.2f}% | "
                    f"{record['images_per_sec']:.0f} img/s")

    def evaluate(self, data: Dataset | None = None) -> dict:
        """Metrics on `data` (default: the validation set), with the EMA weights when averaging."""
        data = self.val_data if data is None else data
        if self.ema is None:
            return evaluate(self.model, data, self.config.eval_batch_size)
        with self.ema.swapped_in(self.model):
            return evaluate(self.model, data, self.config.eval_batch_size)

    def _print(self, line: str) -> None:
        if self.quiet:
            print(line, flush=True)
        else:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)

    # ------------------------------------------------------------------ checkpoints

    def _save(self) -> None:
        groups = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.ema is not None:
            groups["ema"] = self.ema.state_dict()
        meta = {
            **self.extra_meta,
            "train_config": dataclasses.asdict(self.config),
            "epoch": self.epoch, "batch": self.batch, "running": self.running,
            "history": self.history,
            "dropout_counter": int(getattr(self.model, "dropout_counter", 0)),
            "ema_updates": self.ema.updates if self.ema is not None else 0,
        }
        save_checkpoint(self.checkpoint_path, groups, meta)

    def restore(self, groups: dict, meta: dict) -> None:
        """Continue from a checkpoint (as `load_checkpoint` returns it) of a run with this config."""
        saved = TrainConfig(**meta["train_config"])
        if saved != self.config:
            raise ValueError("the checkpoint was written with different training settings: "
                             f"{_differences(saved, self.config)}")
        self.model.load_state_dict(groups["model"])
        self.optimizer.load_state_dict(groups["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(groups.get("ema", {}), meta["ema_updates"])
        if hasattr(self.model, "dropout_counter"):
            self.model.dropout_counter = int(meta["dropout_counter"])
        self.epoch, self.batch = int(meta["epoch"]), int(meta["batch"])
        self.running = dict(meta["running"])
        self.history = list(meta["history"])
        # The metrics file may hold an epoch finished after this checkpoint's; start it afresh.
        self.log.path.write_text("".join(_json_line(h) for h in self.history))


def _fresh_running() -> dict:
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def _json_line(record: dict) -> str:
    return json.dumps(record) + "\n"


def _differences(a: TrainConfig, b: TrainConfig) -> str:
    pairs = [(f.name, getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)]
    return ", ".join(f"{name}: {x!r} (checkpoint) vs {y!r}" for name, x, y in pairs if x != y)


def _install_sigint(handler):
    """Route the first Ctrl-C to `handler` (a clean stop); a second one interrupts at once.

    Returns the previous handler, or None where signals cannot be set (outside the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        signal.signal(signal.SIGINT, previous)
        handler()

    signal.signal(signal.SIGINT, on_sigint)
    return previous
