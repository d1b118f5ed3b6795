"""The training loop: epochs of steps, evaluation, metrics, plots, checkpoints, exact resume.

One step: forward (training mode) -> softmax cross-entropy -> backward -> optional gradient
clipping -> optimizer update -> EMA update. Everything on arrays stays in the model's backend;
only the loss and the logits (for accuracy) come back to the host.

Resuming is exact: a checkpoint holds the weights (with batch-norm statistics), the optimizer's
slots and step count, the EMA, the dropout counter, the epoch and the batch within it, and the
running sums of the epoch's training metrics. The loader's batches are a pure function of
(seed, epoch, batch), so a resumed run performs exactly the same arithmetic as an uninterrupted
one and ends with bit-identical weights.

Run directory: checkpoint.npz (the last epoch or step), best.npz (the epoch with the best validation
top-1), metrics.jsonl (one line per epoch), learning_curves.png, confusion_matrix.png, and run.lock
while a training holds it (lock.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from ..data import Dataset, describe_dataset, make_loader
from .checkpoint import FORMAT_VERSION, CheckpointError, checkpoint_format, keep_copy, save_checkpoint
from .clipping import clip_by_global_norm
from .config import TrainConfig
from .ema import EMA
from .evaluate import check_labels, evaluate
from .lock import RunLock
from .metrics import MetricsLog, topk_correct
from .optimizers import make_optimizer
from .plots import plot_confusion_matrix, plot_learning_curves
from .resume import check_same_data, checked_progress, meta_field
from .schedules import Schedule
from .stop import install_stop_handlers

__all__ = ["BEST_CHECKPOINT", "CHECKPOINT", "METRICS", "TrainConfig", "Trainer", "TrainingDiverged",
           "TrainingInterrupted", "check_same_data"]

CHECKPOINT = "checkpoint.npz"
# The checkpoint of the epoch with the best validation top-1 so far (the first of equals kept).
BEST_CHECKPOINT = "best.npz"
METRICS = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: a checkpoint of the last completed step was saved, training can be resumed.

    `signal` is the signal that asked for the stop (None when `Trainer.request_stop` was called)."""

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        self.signal = signum


class Trainer:
    """Trains `model` on `train_data`, evaluating on `val_data` after every epoch.

    `run_dir` receives the checkpoint, metrics and plots; `extra_meta` (JSON-serialisable: the
    model configuration, the dataset's description) is stored in every checkpoint so that
    `npxception evaluate` and `--resume` can rebuild the run.

    `distributed` (an npxception.distributed.DataParallel, or None for one process) makes this
    one rank of a data-parallel run: its loader reads only this rank's rows of each global batch,
    the gradients, metrics and evaluation are reduced, and only rank 0 writes files or shows progress.
    """

    def __init__(self, model, train_data: Dataset, val_data: Dataset, config: TrainConfig, run_dir,
                 *, quiet: bool = False, extra_meta: dict | None = None, distributed=None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.model, self.config = model, config
        self.dist = distributed
        self._writes = distributed is None or distributed.is_root  # only rank 0 writes and prints
        self.backend = model.backend
        self.val_data = val_data
        classes = _model_classes(model)
        for name, data in (("train_data", train_data), ("val_data", val_data)):
            if classes is not None and data.num_classes > classes:
                raise ValueError(f"{name} has {data.num_classes} classes, the model only {classes} "
                                 "(its num_classes must cover every label)")
        # Nothing is written before fit(): a run whose settings fail leaves no folder behind.
        self.run_dir = Path(run_dir)
        self.lock = RunLock(self.run_dir)
        self.quiet, self.extra_meta = quiet, dict(extra_meta or {})
        self.data_description = {"train": describe_dataset(train_data), "val": describe_dataset(val_data)}
        # Recorded with every epoch: a run that had to drop unreadable images says from when on.
        self.skip_bad_images = bool(getattr(train_data, "skip_bad", False))
        dtype = np.dtype(getattr(model, "dtype", np.float32))
        # On several ranks each rank's loader reads only its rows of every global batch.
        build = make_loader if distributed is None else distributed.loader
        self.loader = build(train_data, config.batch_size, shuffle=True, augment=config.augment,
                            seed=config.seed, dtype=dtype)
        self.optimizer = make_optimizer(config.optimizer, self.backend, momentum=config.momentum,
                                        weight_decay=config.weight_decay)
        self.schedule = Schedule(config.lr, config.schedule, config.epochs, config.warmup_epochs,
                                 config.decay_rate, config.decay_epochs)
        self.ema = EMA(self.backend, config.ema_decay) if config.ema_decay > 0 else None
        self.log = MetricsLog(self.run_dir / METRICS)
        self.epoch, self.batch = 0, 0
        self.max_steps: int | None = None  # the step limit of the fit() in progress
        self.running = _fresh_running()
        self.history: list[dict] = []
        self._stop = threading.Event()
        self._stop_signal: int | None = None
        if self.dist is not None:
            self.dist.attach(self)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def request_stop(self, signum: int | None = None) -> None:
        """Stop after the current step, save a checkpoint and raise TrainingInterrupted (Ctrl-C).

        Safe from any thread and from a signal handler; `signum` only goes into the exception."""
        if not self._stop.is_set():
            self._stop_signal = signum
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _on_signal(self, signum: int) -> None:
        # Said at once: the step in progress may be compiling kernels, which can take a minute.
        name = signal.Signals(signum).name
        self._print(f"{name}: stopping after the current step and saving a checkpoint; "
                    f"{'Ctrl-C' if signum == signal.SIGINT else name} again quits at once")
        self.request_stop(signum)

    # ------------------------------------------------------------------ the loop

    def fit(self, max_steps: int | None = None) -> list[dict]:
        """Train until `config.epochs`, or save and return after `max_steps` steps of this call
        (a smoke run; `stopped_early` is then True and the run resumes from the checkpoint).
        Returns the history (one dict per finished epoch)."""
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps, self._steps_left, self.stopped_early = max_steps, max_steps, False
        previous = install_stop_handlers(self._on_signal)
        try:
            # One training per run directory: rank 0 holds the lock for a data-parallel run.
            with self.lock if self._writes else contextlib.nullcontext():
                # First, before anything is written: ranks started differently stop here, together.
                if self.dist is not None:
                    self.dist.start(self)  # the same run on every rank, with rank 0's weights
                # The metrics file may hold an epoch an earlier process finished after the checkpoint
                # it was resumed from (or a whole earlier run): it restarts from this run's history.
                if self._writes:
                    self.log.path.write_text("".join(_json_line(h) for h in self.history))
                while self.epoch < self.config.epochs and self._steps_left != 0:
                    if not self._train_epoch():
                        break
                    self._end_epoch()
                if self._steps_left == 0 and self.epoch < self.config.epochs:
                    self._save()
                    self.stopped_early = True
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.history

    def _train_epoch(self) -> bool:
        """The rest of the epoch; False if it stopped at the step limit before the epoch's end."""
        from tqdm import tqdm

        cfg, epoch, steps = self.config, self.epoch, len(self.loader)
        bar = tqdm(total=steps, initial=self.batch, disable=self.quiet or not self._writes, unit="batch",
                   leave=True, desc=f"epoch {epoch + 1}/{cfg.epochs}", dynamic_ncols=True)
        try:
            for x, labels in self.loader.epoch(epoch, start=self.batch):
                stop, rows = self._stop.is_set(), len(labels)
                if self.dist is not None:  # every rank stops at the same step; the global batch's rows
                    stop, rows = self.dist.begin_step(stop, rows)
                if stop:
                    self._save()
                    raise TrainingInterrupted(
                        f"interrupted in epoch {epoch + 1} after {self.batch} of {steps} batches; "
                        f"checkpoint saved to {self.checkpoint_path}", self._stop_signal)
                start = time.perf_counter()
                loss, correct = self._step(x, labels, epoch + (self.batch + 1) / steps)
                r = self.running
                r["seconds"] += time.perf_counter() - start
                r["loss_sum"] += loss * rows
                r["correct"] += correct
                r["seen"] += rows
                self.batch += 1
                if self.dist is not None:
                    self.dist.end_step()
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
        """One optimisation step on the loader's batch (on several ranks: this rank's rows of the global
        batch, after `dist.begin_step`); returns (loss, number of correct top-1 predictions), both
        of the global batch."""
        be, cfg, model, dist = self.backend, self.config, self.model, self.dist
        labels_dev = be.to_device(labels)
        logits = model.forward(be.to_device(x), True)
        # The loss kernels index the logits by label: a label the model has no class for would
        # read and write outside them. Checked here, on the host, before any kernel sees it.
        check_labels(labels, int(logits.shape[1]), len(x), "training labels")
        loss = float(be.to_numpy(be.softmax_cross_entropy(logits, labels_dev, cfg.label_smoothing)))
        correct = topk_correct(be.to_numpy(logits), labels, 1)
        if dist is not None:  # the global batch's mean loss and correct count, on every rank
            loss, correct = dist.reduce_metrics(loss, correct, len(labels), dist.global_rows)
        if not math.isfinite(loss):
            kept = (f"the last good checkpoint ({self.checkpoint_path}) is kept" if self.history
                    else "no checkpoint was written yet")
            raise TrainingDiverged(
                f"loss became {loss} at epoch {self.epoch + 1}, batch {self.batch + 1}; training "
                f"stopped and {kept}. Try a smaller --lr, a warm-up (--warmup-epochs) or "
                "gradient clipping (--clip-norm).")
        if dist is None:
            model.backward(be.softmax_cross_entropy_backward(1.0, logits, labels_dev, cfg.label_smoothing),
                           input_grad=False)
        else:  # weighted by this rank's share of the rows: the summed gradients are the global mean's
            dist.backward(model, be.softmax_cross_entropy_backward(dist.loss_weight, logits, labels_dev,
                                                                   cfg.label_smoothing))
        params = model.trainable()
        if cfg.clip_norm > 0:
            clip_by_global_norm(params, cfg.clip_norm, be)
        self.optimizer.step(params, self.schedule(progress))
        if self.ema is not None:
            self.ema.update(params)
        return loss, correct

    def _end_epoch(self) -> None:
        r = self.running
        start = time.perf_counter()
        val = self.evaluate()
        eval_seconds = time.perf_counter() - start
        record = {
            "epoch": self.epoch + 1,
            "train_loss": r["loss_sum"] / r["seen"],
            "train_top1": r["correct"] / r["seen"],
            "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
            "lr": self.schedule(self.epoch + 1.0),
            "images_per_sec": r["seen"] / max(r["seconds"], 1e-9),
            "train_seconds": r["seconds"],
            "eval_seconds": eval_seconds,  # with train_seconds: the time to each epoch's accuracy
            "evaluated_with": "ema" if self.ema is not None else "weights",
            "skip_bad_images": self.skip_bad_images,
        }
        self.history.append(record)
        if self._writes:
            self.log.write(record)
        self.epoch, self.batch, self.running = self.epoch + 1, 0, _fresh_running()
        # Rank 0 plots before it meets the other ranks after the checkpoint: they wait for all of its
        # writes at once, with the allowance for writes, not at the next step under the deadline.
        self._save(meet=not self._writes)
        if not self._writes:
            return
        if all(record["val_top1"] > h["val_top1"] for h in self.history[:-1]):
            keep_copy(self.checkpoint_path, self.run_dir / BEST_CHECKPOINT)
        self._plot("learning_curves.png", plot_learning_curves, self.history)
        self._plot("confusion_matrix.png", plot_confusion_matrix, val["confusion"], self.val_data.class_names,
                   title=f"validation, epoch {record['epoch']}: top-1 {100 * val['top1']:.1f}%")
        if self.dist is not None:
            self.dist.barrier()
        self._print(f"epoch {record['epoch']}/{self.config.epochs}: train loss {record['train_loss']:.4f} "
                    f"acc {100 * record['train_top1']:.1f}% | val loss {val['loss']:.4f} "
                    f"top-1 {100 * val['top1']:.2f}% top-5 {100 * val['top5']:.2f}% | "
                    f"{record['images_per_sec']:.0f} img/s")

    def _plot(self, name: str, draw, *args, **kwargs) -> None:
        """A picture is a by-product: one that cannot be drawn is a warning, never a lost run."""
        try:
            draw(*args, self.run_dir / name, **kwargs)
        except Exception as e:  # noqa: BLE001 - matplotlib can fail in many ways (memory, fonts, disk)
            warnings.warn(f"{name} not drawn ({type(e).__name__}: {e}); training continues",
                          RuntimeWarning, stacklevel=2)

    def evaluate(self, data: Dataset | None = None) -> dict:
        """Metrics on `data` (default: the validation set), with the EMA weights when averaging."""
        data = self.val_data if data is None else data
        run = evaluate if self.dist is None else self.dist.evaluate  # sharded over the ranks
        if self.ema is None:
            return run(self.model, data, self.config.eval_batch_size)
        with self.ema.swapped_in(self.model):
            return run(self.model, data, self.config.eval_batch_size)

    def _print(self, line: str) -> None:
        if not self._writes:
            return
        if self.quiet:
            print(line, flush=True)
        else:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)

    # ------------------------------------------------------------------ checkpoints

    def _save(self, meet: bool = True) -> None:
        """Write the checkpoint (rank 0); with `meet`, every rank then waits until it is complete."""
        if not self._writes:  # rank 0 writes; the others wait until the checkpoint is complete
            self.dist.barrier()
            return
        groups = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.ema is not None:
            groups["ema"] = self.ema.state_dict()
        meta = {
            **self.extra_meta,
            "format_version": FORMAT_VERSION,
            "train_config": dataclasses.asdict(self.config),
            "epoch": self.epoch, "batch": self.batch, "running": self.running,
            "history": self.history,
            "dropout_counter": int(getattr(self.model, "dropout_counter", 0)),
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "data_description": self.data_description,
        }
        save_checkpoint(self.checkpoint_path, groups, meta)
        if self.dist is not None and meet:
            self.dist.barrier()

    def restore(self, groups: dict, meta: dict) -> None:
        """Continue from a checkpoint (as `load_checkpoint` returns it) of a run with this config.

        Everything read is checked against what this run must have (settings, data, every array's
        shape, counters in range) before any of it reaches a kernel; on failure nothing changes.
        """
        checkpoint_format(meta)
        saved = TrainConfig.from_dict(meta_field(meta, "train_config", dict))
        if saved != self.config:
            raise ValueError("the checkpoint was written with different training settings: "
                             f"{_differences(saved, self.config)}")
        check_same_data(meta, self.data_description)
        epoch, batch, dropout_counter, ema_updates, running, history = checked_progress(
            meta, self.config.epochs, len(self.loader), set(_fresh_running()))
        for group in ("model", "optimizer"):
            if group not in groups:
                raise CheckpointError(f"the checkpoint has no {group!r} arrays")
        if self.ema is not None and ema_updates and "ema" not in groups:
            raise CheckpointError("the checkpoint has no 'ema' arrays although it averaged the weights")
        own, own_slots = self.model.state_dict(), self.optimizer.state_dict()
        self.model.load_state_dict(groups["model"])  # strict: same keys, same shapes, or nothing
        try:
            self.optimizer.load_state_dict(groups["optimizer"], like=own)
            if self.ema is not None:
                self.ema.load_state_dict(groups.get("ema", {}), ema_updates, like=own)
        except ValueError:  # all or nothing: the trainer stays as it was
            self.model.load_state_dict(own)
            self.optimizer.load_state_dict(own_slots)
            raise
        if hasattr(self.model, "dropout_counter"):
            self.model.dropout_counter = dropout_counter
        self.epoch, self.batch = epoch, batch
        self.running = dict(running)
        self.history = list(history)


def _fresh_running() -> dict:
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def _json_line(record: dict) -> str:
    return json.dumps(record) + "\n"


def _differences(a: TrainConfig, b: TrainConfig) -> str:
    pairs = [(f.name, getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)]
    return ", ".join(f"{name}: {x!r} (checkpoint) vs {y!r}" for name, x, y in pairs if x != y)


def _model_classes(model) -> int | None:
    config = getattr(model, "config", None)
    if config is None or not getattr(config, "include_top", True):
        return None
    return int(config.num_classes)
