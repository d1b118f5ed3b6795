"""Counting host <-> device copies, to show that a training step copies only at batch boundaries.

Two levels, counted together inside `CopyCounter.phase(name)`:

- "api": calls of the backend's `to_device` with a host array and of `to_numpy` with a device
  array, made by whoever calls through the backend object (the model, the trainer, this check);
- "driver": every copy Numba makes, at the bottom of its stack, so that a copy hidden inside a
  backend function (a kernel launched on a NumPy array, a reduction read back) shows up as well:
  `numba.cuda.cudadrv.driver.host_to_device` / `device_to_host` on a GPU; in the simulator its
  `to_device` and `FakeCUDAArray.copy_to_host` / `copy_to_device`.

Patches are installed on entering the counter and removed on leaving it; on a host backend
(numpy, cpu) there is nothing to count and nothing is patched.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict


def _is_device_array(a) -> bool:
    return hasattr(a, "copy_to_host")


class CopyCounter:
    def __init__(self, backend, sim: bool):
        self.backend, self.sim = backend, sim
        self.counts: dict = defaultdict(lambda: defaultdict(int))
        self._phase = "outside"
        self._undo: list = []

    # ------------------------------------------------------------------ recording
    def _count(self, level: str, direction: str, nbytes: int) -> None:
        c = self.counts[self._phase]
        c[f"{level}_{direction}"] += 1
        c[f"{level}_{direction}_bytes"] += int(nbytes)

    @contextlib.contextmanager
    def phase(self, name: str):
        previous, self._phase = self._phase, name
        try:
            yield
        finally:
            self._phase = previous

    def summary(self) -> dict:
        return {phase: dict(c) for phase, c in self.counts.items()}

    # ------------------------------------------------------------------ patching
    def _patch(self, owner, name: str, wrapper) -> None:
        original = getattr(owner, name)
        setattr(owner, name, wrapper(original))
        self._undo.append((owner, name, original))

    def __enter__(self) -> CopyCounter:
        be = self.backend
        if getattr(be, "name", "") != "cuda":   # host backends: arrays never leave the host
            return self

        def api_to_device(original):
            def to_device(a):
                if not _is_device_array(a):
                    self._count("api", "h2d", getattr(a, "nbytes", 0))
                return original(a)
            return to_device

        def api_to_numpy(original):
            def to_numpy(a):
                if _is_device_array(a):
                    self._count("api", "d2h", a.nbytes)
                return original(a)
            return to_numpy

        self._patch(be, "to_device", api_to_device)
        self._patch(be, "to_numpy", api_to_numpy)
        self._patch_numba()
        return self

    def _patch_numba(self) -> None:
        def counted(direction, size_of):
            def wrapper(original):
                def copy(*args, **kwargs):
                    size = size_of(*args, **kwargs)
                    if size is not None:   # None: not a host <-> device copy
                        self._count("driver", direction, size)
                    return original(*args, **kwargs)
                return copy
            return wrapper

        if not self.sim:
            from numba.cuda.cudadrv import driver

            self._patch(driver, "host_to_device", counted("h2d", lambda dst, src, size, *a, **k: size))
            self._patch(driver, "device_to_host", counted("d2h", lambda dst, src, size, *a, **k: size))
            return
        from numba import cuda
        from numba.cuda.simulator.cudadrv import devicearray as fake

        def to_device_size(ary, *args, to=None, **kwargs):
            return getattr(ary, "nbytes", 0) if to is None else None   # with `to`, copy_to_device counts

        self._patch(fake, "to_device", counted("h2d", to_device_size))
        self._patch(cuda, "to_device", lambda original: fake.to_device)
        self._patch(fake.FakeCUDAArray, "copy_to_host", counted("d2h", lambda arr, *a, **k: arr.nbytes))
        self._patch(fake.FakeCUDAArray, "copy_to_device",
                    counted("h2d", lambda arr, src, *a, **k: None if _is_device_array(src) else arr.nbytes))

    def __exit__(self, *exc) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)
