"""Helpers for tests that start MPI jobs: a job bounded in time, and finding one rank's process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def bounded(command: list[str], timeout: float, env: dict, cwd) -> subprocess.CompletedProcess:
    """`command` in a session of its own; on timeout the launcher and every rank it started go together."""
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                           start_new_session=True)
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        raise AssertionError(f"the job ran over {timeout} s and was killed: {command}\n{out}{err}") from None
    return subprocess.CompletedProcess(command, job.returncode, out, err)


def rank_pid(launcher_pid: int, rank: int, wait: float = 20.0) -> int:
    """The pid of `rank` (its PMI_RANK, read from /proc) among the launcher's descendants."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"PMI_RANK={rank}".encode() in environ and b"npxception" in cmdline and _descends(entry.name,
                                                                                                 launcher_pid):
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no process of rank {rank} under pid {launcher_pid}")


def _descends(pid: str, ancestor: int) -> bool:
    while pid not in ("0", "1"):
        try:
            pid = (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            return False
        if int(pid) == ancestor:
            return True
    return False
