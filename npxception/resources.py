"""Will it fit? Memory estimates checked before large allocations, and one-line errors when not.

A request such as 10^9 built-in images, a folder of 20,000-pixel photos or a million-class
classifier should be refused in a sentence that names what to change, before NumPy tries to
allocate it: a failed allocation of many gigabytes can take the machine down with it (Linux
overcommits, then kills), not just raise MemoryError.
"""

from __future__ import annotations

import os
from pathlib import Path

# Decoded images larger than this stream from disk unless told otherwise (image folders, shards).
IN_MEMORY_LIMIT = 4 * 2**30


class ResourceError(MemoryError):
    """A request that needs more memory than the machine has, reported before allocating it."""


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable, capped by a cgroup (container) limit;
    None where it cannot be told (then nothing is refused in advance)."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return available


def check_fits(nbytes: float, what: str, hint: str) -> None:
    """Raise ResourceError when `nbytes` (an estimate) exceeds the memory available.

    `what` says what would be allocated ("the images of --train-size 10000000 at 32x32"), `hint`
    what to change."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise ResourceError(f"{what} would need about {format_bytes(nbytes)} of memory, this machine has about "
                            f"{format_bytes(available)} available; {hint}")
