"""Running a reference framework's code where its native crash cannot take the caller down.

PyTorch's CPU kernels are native code; a bug in one of them (a heap overrun, an abort) ends the
whole process, and with it a test suite or a benchmark driver. `run_python` runs a snippet in a
child interpreter and says how it ended, so the caller can tell "wrong" (a failed assertion, exit
status 1) from "crashed" (killed by a signal) and decide: a test skips with the path and the CPU
named, a benchmark records the variant as crashed and goes on.

    done = run_python("import torch; ...", timeout=300)
    if done.crashed:
        pytest.skip(f"... crashed ({done.how}) on {cpu_name()}")
    assert done.returncode == 0, done.output_tail()
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ChildResult:
    """How a child interpreter ended: its status (negative: the signal that killed it) and output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def crashed(self) -> bool:
        """Killed by a signal (SIGABRT from glibc's heap checks, SIGSEGV, ...), not a Python error."""
        return self.returncode < 0

    @property
    def how(self) -> str:
        """'SIGABRT', 'SIGSEGV', ... for a crash, else 'exit status N'."""
        if self.crashed:
            try:
                return signal.Signals(-self.returncode).name
            except ValueError:
                return f"signal {-self.returncode}"
        return f"exit status {self.returncode}"

    def output_tail(self, lines: int = 12) -> str:
        return "\n".join((self.stdout + self.stderr).strip().splitlines()[-lines:])


def run_python(code: str, *, timeout: float = 600, env: dict | None = None) -> ChildResult:
    """Run `code` in a fresh interpreter (this one's, with the project importable) and wait for it."""
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), child_env.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=child_env, cwd=ROOT)
    return ChildResult(done.returncode, done.stdout, done.stderr)


@cache
def cpu_name() -> str:
    """The processor's model name and its widest AVX level, e.g. 'AMD EPYC (AVX2)'."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({isa})"
