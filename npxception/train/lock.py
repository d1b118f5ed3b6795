"""One training per run directory: a lock file naming the process that holds it.

`run.lock` is created with O_CREAT | O_EXCL (atomic on POSIX and Windows, local disks and NFS v3+)
and holds "<pid> <host>". A second training of the same directory is refused with the first one's
process id. A lock whose process no longer runs on this host (kill -9, a power cut) is stale and is
taken over; one from another host cannot be checked from here, so it is refused with its host named.
The lock is removed when the training ends, however it ends; a folder the lock created is removed
too when nothing else was written into it (a run that failed before its first save).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

LOCK = "run.lock"


class RunLocked(RuntimeError):
    """Another process is training in this run directory."""


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    except OSError:
        return False
    return True


def _holder(path: Path) -> tuple[int, str] | None:
    """(pid, host) written in the lock file, or None for a file that cannot be parsed."""
    try:
        pid, host = path.read_text().split(maxsplit=1)
        return int(pid), host.strip()
    except (OSError, ValueError):
        return None


class RunLock:
    """`with RunLock(run_dir):` holds run_dir/run.lock for this process. Re-entrant within a process."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._held = False
        self._created_dir = False
        self._depth = 0

    def acquire(self) -> None:
        if self._depth:
            self._depth += 1
            return
        if not self.run_dir.exists():
            self.run_dir.mkdir(parents=True)
            self._created_dir = True
        host = socket.gethostname()
        for _ in range(3):  # a stale lock is removed, then the exclusive create is tried again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _holder(self.path)
                if holder is not None and holder[1] == host and holder[0] == os.getpid():
                    break  # this process already holds it (another RunLock object)
                if holder is not None and (holder[1] != host or _alive(holder[0])):
                    where = "" if holder[1] == host else f" on host {holder[1]}"
                    raise RunLocked(f"{self.run_dir} is in use by another training (process {holder[0]}{where}); "
                                    f"wait for it to end, or choose another --out. If no such process runs, "
                                    f"delete {self.path}") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {host}\n")
            self._held = True
            break
        else:
            raise RunLocked(f"{self.path}: cannot take the lock (it keeps reappearing)")
        self._depth = 1

    def release(self) -> None:
        if self._depth > 1:
            self._depth -= 1
            return
        self._depth = 0
        if self._held:
            holder = _holder(self.path)
            if holder is not None and holder[0] == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False
        if self._created_dir:
            try:
                self.run_dir.rmdir()  # only succeeds when nothing was written
            except OSError:
                pass
            self._created_dir = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
