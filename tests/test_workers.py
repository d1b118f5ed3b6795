"""The data workers: they never run the trainer's signal handlers, shut down at once, are bounded
by the cores and the memory, and leave nothing in /dev/shm even when killed with SIGKILL."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from npxception.cli import main
from npxception.data.streaming import StreamingDataset, shard_index
from npxception.train import load_checkpoint
from npxception.train.stop import install_stop_handlers
from tests.streaming_data import make_folder, make_shards

ROOT = Path(__file__).resolve().parents[1]
CORES = len(os.sched_getaffinity(0))
# 8, or the most a machine with fewer than 2 cores accepts (4 per core).
MANY = min(8, 4 * CORES)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    return make_shards(make_folder(root / "images", 24, classes=3, png_every=0), root / "shards", per_shard=8)


@pytest.fixture
def trainer_handlers():
    """The stop handlers a training run installs, so that forked workers inherit them as in a run."""
    calls = []
    previous = install_stop_handlers(calls.append)
    yield calls
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _workers() -> list:
    return [p for p in mp.active_children() if p.name.startswith("npxception-data-")]


def _python(code: str, **options):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)


def test_a_streamed_run_prints_no_stop_line_from_its_workers(shards, tmp_path):
    run = _python(f"""
        import sys
        from npxception.cli import main
        sys.exit(main(["train", "--dataset", "shards", "--data-dir", {str(shards)!r}, "--preset", "tiny",
                       "--backend", "numpy", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
                       "--quiet", "--workers", "2", "--out", {str(tmp_path / "run")!r}]))
    """)
    output = run.communicate(timeout=300)[0]
    assert run.returncode == 0, output
    assert "SIGTERM: stopping" not in output and "SIGINT: stopping" not in output


def test_shutting_down_many_workers_is_prompt(shards, trainer_handlers):
    batches = StreamingDataset(shard_index(shards), 16, workers=MANY).loader(4).epoch(0)
    next(batches)
    assert len(_workers()) == MANY
    start = time.perf_counter()
    batches.close()
    assert time.perf_counter() - start < 5.0  # was 2 s per worker
    assert not _workers() and not trainer_handlers


def test_a_worker_ignores_sigint_and_dies_of_its_parents_sigterm(shards, trainer_handlers):
    batches = StreamingDataset(shard_index(shards), 16, workers=2).loader(4).epoch(0)
    next(batches)
    try:
        worker, other = _workers()
        os.kill(worker.pid, signal.SIGINT)
        worker.join(timeout=0.5)
        assert worker.exitcode is None, "SIGINT is the parent's to handle"
        os.kill(worker.pid, signal.SIGTERM)  # from the parent, as terminate() sends it
        worker.join(timeout=2.0)
        assert worker.exitcode == -signal.SIGTERM
        subprocess.run(["kill", "-TERM", str(other.pid)], check=True)  # from anyone else: the parent's to handle
        other.join(timeout=0.5)
        assert other.exitcode is None
        assert not trainer_handlers  # the parent's handler ran neither here nor in a worker
    finally:
        batches.close()


def test_a_sigterm_to_the_whole_group_saves_the_batch_in_hand(shards, tmp_path):
    """systemd, Slurm and `kill -TERM -PGID` signal every process of a run: the workers leave the stop
    to the trainer, which saves after its step (had they died of it, the next batch would fail)."""
    run = _python(f"""
        import sys, time
        from npxception.cli import main
        from npxception.models.xception import Xception
        forward, calls = Xception.forward, []
        def slow_second_step(self, x, training):
            if training:
                calls.append(1)
                if len(calls) == 2:
                    print("in step 2", flush=True)
                    time.sleep(1.0)  # the signal arrives during this step
            return forward(self, x, training)
        Xception.forward = slow_second_step
        sys.exit(main(["train", "--dataset", "shards", "--data-dir", {str(shards)!r}, "--preset", "tiny",
                       "--backend", "numpy", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
                       "--quiet", "--workers", "2", "--out", {str(tmp_path / "run")!r}]))
    """, start_new_session=True)
    try:
        lines = []
        for line in run.stdout:
            lines.append(line)
            if line.strip() == "in step 2":
                break
        assert lines and lines[-1].strip() == "in step 2", "".join(lines)
        os.killpg(run.pid, signal.SIGTERM)
        output = "".join(lines) + run.communicate(timeout=300)[0]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 143, output
    assert output.count("SIGTERM: stopping") == 1, output  # the trainer's line, none from the workers
    assert load_checkpoint(tmp_path / "run")[1]["batch"] == 2


def test_too_many_workers_are_refused_naming_the_bound(shards, tmp_path, capsys, monkeypatch):
    index, bound = shard_index(shards), 4 * CORES
    StreamingDataset(index, 16, workers=bound)  # never fewer than 4 per core, e.g. 2 on 2 cores
    with pytest.raises(ValueError, match=rf"^--workers {bound + 1} is more than {bound} \(4 per core on the "
                                         rf"{CORES} core\(s\) this process may use\); use at most {bound}$"):
        StreamingDataset(index, 16, workers=bound + 1)
    assert main(["train", "--dataset", "shards", "--data-dir", str(shards), "--image-size", "16",
                 "--workers", "1000", "--out", str(tmp_path / "run")]) == 1
    assert f"error: --workers 1000 is more than {bound} (4 per core" in capsys.readouterr().err
    from npxception.data.streaming import pool

    monkeypatch.setattr(pool, "available_memory", lambda: 4 * pool.WORKER_BYTES)
    data = StreamingDataset(index, 16, workers=MANY)
    with pytest.raises(ValueError, match=rf"^--workers {MANY} needs about .* available; use at most 3 "):
        data.loader(4)
    StreamingDataset(index, 16, workers=3).loader(4)  # the bound it names is accepted


def _shared_memory_of(pid: int) -> set[str]:
    """The /dev/shm files process `pid` maps ("(deleted)" once their name is unlinked)."""
    paths = {line.split(maxsplit=5)[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
             if len(line.split(maxsplit=5)) == 6}
    return {path.removesuffix(" (deleted)") for path in paths if path.startswith("/dev/shm/")}


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="POSIX shared memory lives in /dev/shm on Linux")
def test_no_shared_memory_is_left_after_the_process_group_is_killed(shards):
    run = _python(f"""
        import time
        from npxception.data.streaming import StreamingDataset, shard_index
        batches = StreamingDataset(shard_index({str(shards)!r}), 16, workers=2).loader(4).epoch(0)
        next(batches)
        print("batch", flush=True)
        time.sleep(60)
    """, start_new_session=True)
    mapped = set()
    try:
        assert run.stdout.readline().strip() == "batch"
        mapped = _shared_memory_of(run.pid)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        assert mapped, "the loader maps its batch slots"
        assert not [path for path in mapped if os.path.exists(path)]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        for path in mapped:  # what the failing version left behind
            if os.path.exists(path):
                os.unlink(path)
