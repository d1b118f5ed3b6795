"""Stage "device": package versions, the GPU's name and attributes, what PyTorch sees."""

from __future__ import annotations

import platform
from importlib import metadata

DISTRIBUTIONS = ("numpy", "numba", "numba-cuda", "torch", "timm", "cupy-cuda12x", "cuda-python",
                 "cuda-bindings", "mpi4py")


def versions() -> dict:
    found = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    import npxception

    found["npxception"] = npxception.__version__
    return found


def _attribute(dev, name: str):
    try:
        return int(getattr(dev, name))
    except Exception:  # an attribute this driver does not report is left out, not fatal
        return None


def device_info(sim: bool) -> dict:
    """What numba-cuda and PyTorch see; the theoretical memory bandwidth from the memory clock."""
    import npxception

    info = {"cuda_available": npxception.cuda_available(), "simulator": sim}
    if not info["cuda_available"] or sim:
        return info
    from numba import cuda

    dev = cuda.get_current_device()
    info["name"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    info["compute_capability"] = list(dev.compute_capability)
    for attr in ("MULTIPROCESSOR_COUNT", "MEMORY_CLOCK_RATE", "GLOBAL_MEMORY_BUS_WIDTH", "CLOCK_RATE"):
        info[attr.lower()] = _attribute(dev, attr)
    clock_khz, bus_bits = info["memory_clock_rate"], info["global_memory_bus_width"]
    if clock_khz and bus_bits:   # double data rate: two transfers per clock
        info["peak_bandwidth_gbs"] = round(2 * clock_khz * 1e3 * bus_bits / 8 / 1e9, 1)
    free, total = cuda.current_context().get_memory_info()
    info["memory_gib"] = round(total / 2**30, 1)
    info["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
    info["runtime"] = ".".join(map(str, cuda.runtime.get_version()))
    try:
        import torch

        info.update(torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    torch_sees_gpu=torch.cuda.is_available())
    except Exception as exc:  # no torch: the comparisons are skipped, the rest still runs
        info["torch_error"] = f"{type(exc).__name__}: {exc}"
    return info


def stage(run) -> dict:
    found = {"versions": versions(), "device": device_info(run.sim)}
    print("  " + ", ".join(f"{k} {v}" for k, v in {**found["versions"], **found["device"]}.items()), flush=True)
    if run.backend == "cuda" and not found["device"]["cuda_available"]:
        raise RuntimeError("numba-cuda sees no GPU (npxception.cuda_available() is False); "
                           "run with --sim for the dry run in the simulator")
    return found
