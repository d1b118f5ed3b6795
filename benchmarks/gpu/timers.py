"""Median times of a callable: CUDA events on a GPU (Numba's or PyTorch's), the wall clock otherwise.

A timed callable only enqueues work; the events bracket it on the default stream, which both Numba
and PyTorch use here, so what is measured is the GPU's time for that work. The simulator and the
CPU have no events: there the wall clock stands in, and the numbers mean nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class Timer:
    """record() -> mark, elapsed_ms(a, b), sync(): one clock's three operations."""

    def __init__(self, kind: str):
        self.kind = kind
        if kind == "numba":
            from numba import cuda

            self._cuda = cuda
        elif kind == "torch":
            import torch

            self._torch = torch
        elif kind != "wall":
            raise ValueError(f"kind must be 'numba', 'torch' or 'wall', got {kind!r}")

    def record(self):
        if self.kind == "numba":
            ev = self._cuda.event(timing=True)
            ev.record()
            return ev
        if self.kind == "torch":
            ev = self._torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def elapsed_ms(self, a, b) -> float:
        if self.kind == "numba":
            b.synchronize()
            return self._cuda.event_elapsed_time(a, b)
        if self.kind == "torch":
            b.synchronize()
            return a.elapsed_time(b)
        return (b - a) * 1e3

    def sync(self) -> None:
        if self.kind == "numba":
            self._cuda.synchronize()
        elif self.kind == "torch":
            self._torch.cuda.synchronize()


def timers(on_gpu: bool) -> tuple[Timer, Timer]:
    """(ours, PyTorch's) timers."""
    return (Timer("numba"), Timer("torch")) if on_gpu else (Timer("wall"), Timer("wall"))


def median_ms(fn: Callable, timer: Timer, *, warmup: int = 2, min_runs: int = 5, max_runs: int = 50,
              target_s: float = 0.3) -> float:
    """Median of enough runs to fill about target_s (between min_runs and max_runs), after warm-up.

    warmup=0 (the dry run) times exactly min_runs calls and nothing else.
    """
    runs = min_runs
    if warmup:
        for _ in range(warmup):
            fn()
        timer.sync()
        t0 = time.perf_counter()
        fn()
        timer.sync()
        once = max(time.perf_counter() - t0, 1e-6)
        runs = int(min(max_runs, max(min_runs, target_s / once)))
    times = []
    for _ in range(runs):
        start = timer.record()
        fn()
        times.append(timer.elapsed_ms(start, timer.record()))
    return float(np.median(times))


def set_torch_precision(strict: bool) -> None:
    """strict: cuDNN and cuBLAS in true float32 (TF32 off); else PyTorch's own defaults."""
    import torch

    torch.backends.cudnn.allow_tf32 = not strict    # PyTorch's default: True
    torch.backends.cuda.matmul.allow_tf32 = False   # PyTorch's default: False
    torch.backends.cudnn.benchmark = False
