"""The state of one GPU check: options, the time budget, the results, and guarded stages.

Every stage is a function `stage(run) -> dict` whose dict goes into `run.results["stages"][name]`
with its status ("ok", "error" with a short trace, or "skipped" with the reason) and its seconds.
A stage that raises does not stop the run, and the results files are rewritten after every stage,
so a run killed from outside still leaves what it had measured.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def short_error(exc: BaseException) -> dict:
    """The message and the last four frames, one short line each: enough to fix, short enough to read."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return {"error": f"{type(exc).__name__}: {message}",
            "trace": [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames]}


@dataclass
class Run:
    sim: bool                       # the CUDA simulator at tiny shapes, PyTorch on the CPU
    budget_s: float                 # the whole run; stages check what is left
    out: Path                       # gpu_check.json and gpu_check.md go here
    backend: str = "cuda"           # the model stages' backend (tests use "numpy")
    options: dict = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)
    results: dict = field(default_factory=lambda: {"stages": {}})
    on_stage_end: Callable | None = None    # called after every stage (writes the files)

    @property
    def torch_device(self) -> str:
        return "cpu" if self.sim or self.backend != "cuda" else "cuda"

    def timing(self, **full) -> dict:
        """median_ms's options: `full` on a GPU; one call, no warm-up, in the dry run."""
        return dict(warmup=0, min_runs=1, max_runs=1) if self.sim else full

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def stage(self, name: str, fn: Callable, *, needs_s: float = 0.0) -> dict | None:
        """Run fn(self) when at least `needs_s` seconds of the budget are left; record the outcome."""
        record: dict = {}
        self.results["stages"][name] = record
        if self.left() < needs_s:
            record.update(status="skipped", reason=f"budget: {self.left():.0f} s left, needs {needs_s:.0f} s")
            print(f"== {name}: skipped ({record['reason']})", flush=True)
            self._ended()
            return None
        print(f"== {name} ({self.left():.0f} s of the budget left)", flush=True)
        t0 = time.monotonic()
        try:
            record.update(fn(self) or {})
            record["status"] = "ok"
        except Exception as exc:  # one failing stage must not stop the others
            record.update(status="error", **short_error(exc))
            print(f"  ERROR in {name}: {record['error']}\n    " + " <- ".join(reversed(record["trace"])),
                  flush=True)
        record["seconds"] = round(time.monotonic() - t0, 2)
        self._ended()
        return record

    def _ended(self) -> None:
        self.results["total_seconds"] = round(self.elapsed(), 2)
        if self.on_stage_end is not None:
            self.on_stage_end(self)


def guarded(fn: Callable, *args, **kwargs) -> tuple:
    """(fn(*args), None), or (None, short error) when it raises: one row of a table failing alone."""
    try:
        return fn(*args, **kwargs), None
    except Exception as exc:  # recorded in the row; the table goes on
        return None, short_error(exc)["error"]
