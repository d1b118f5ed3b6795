"""The ranks of an MPI job agree or stop: what each rank was given is compared before the first step,
one resume rule holds for every number of processes, and a set-up error is said once.

The comparisons are tested in-process; the jobs run under `mpiexec` on `tiny` (numpy backend), each
bounded by a timeout whose expiry kills the whole job, so that a job that would hang fails instead.
Different ranks get different command lines through mpiexec's `-n 1 A : -n 1 B`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from npxception.train import load_checkpoint
from tests.mpi_jobs import bounded

ROOT = Path(__file__).resolve().parent.parent
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None  # found, not imported
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY, reason="needs mpi4py and mpiexec (the mpi extra)")

NPX = [sys.executable, "-m", "npxception"]
TINY = ["train", "--preset", "tiny", "--backend", "numpy", "--image-size", "16", "--train-size", "48",
        "--val-size", "30", "--batch-size", "16", "--epochs", "2", "--quiet"]
# A job that agrees starts training within seconds; one that hangs would wait in a collective forever.
TIMEOUT = 60


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _job(*commands: list[str]) -> subprocess.CompletedProcess:
    """`mpiexec -n 1 npxception A : -n 1 npxception B ...`: rank r runs commands[r]."""
    launch = [MPIEXEC]
    for command in commands:
        launch += [":"] * (len(launch) > 1) + ["-n", "1", *NPX, *command]
    return _bounded(launch)


def _bounded(command: list[str]) -> subprocess.CompletedProcess:
    return bounded(command, TIMEOUT, _env(), ROOT)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    """The job failed and said so in one line, without MPI_Abort's banner."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npxception train: error: "), result.stderr
    assert "abort" not in result.stderr.lower(), result.stderr
    return lines[0]


# --------------------------------------------------------------------------- in-process pieces

def test_a_plan_that_differs_names_each_difference_and_its_ranks():
    from npxception.distributed.agreement import entries, plan_differences

    same = {"epochs": 2, "train data count": 48, "class names": [f"class {i}" for i in range(100)]}
    assert plan_differences([entries(same)] * 3) is None
    other = entries({**same, "train data count": 32})
    line = plan_differences([entries(same), other, entries(same)])
    assert line == ("the 3 ranks were started differently (train data count: 48 on ranks 0, 2, 32 on rank 1); "
                    "every rank must run the same command on the same data")
    long = entries({**same, "class names": [f"class {i}" for i in range(99)]})
    assert long["class names"].startswith("digest ")  # long values travel as a digest
    assert "class names: digest " in plan_differences([entries(same), long])


def test_a_set_up_error_is_said_as_one_process_says_it_or_names_its_rank():
    from npxception.distributed.agreement import set_up_failures

    assert set_up_failures([None, None]) is None
    assert set_up_failures(["--seed must be >= 0, got -1"] * 2) == "--seed must be >= 0, got -1"
    assert set_up_failures([None, "x.npz: no such file", None]) == "rank 1 of 3: x.npz: no such file"
    assert set_up_failures(["a", "b", "b"]) == "rank 0 of 3: a (and ranks 1, 2 failed too)"


@pytest.mark.parametrize("saved, size, allowed", [
    # (the checkpoint's "distributed" record (None: one process), processes now, (sync_bn, noted) or None)
    ({"world_size": 2, "sync_bn": False}, 1, None),
    ({"world_size": 2, "sync_bn": False}, 2, (False, False)),
    ({"world_size": 2, "sync_bn": False}, 3, None),
    ({"world_size": 2, "sync_bn": True}, 1, (False, True)),
    ({"world_size": 2, "sync_bn": True}, 2, (True, False)),
    ({"world_size": 2, "sync_bn": True}, 3, (True, True)),
    (None, 1, (False, False)),
    (None, 2, (True, True)),
    (None, 3, (True, True)),
])
def test_one_resume_rule_for_every_number_of_processes(saved, size, allowed):
    """A run whose batch norm averaged over the global batch (one process, or sync-BN) continues on
    any number of processes, with a note when the number changed; one whose statistics were per
    process continues only on its own number, 1 included."""
    from npxception.train.resume import check_same_world

    meta = {} if saved is None else {"distributed": saved}
    if allowed is None:
        with pytest.raises(ValueError, match=f"trained on 2 processes without --sync-bn.*on {size} process"
                                             r".*resume it with mpiexec -n 2 npxception train --resume RUN$"):
            check_same_world(meta, size, 16, "RUN")
    else:
        sync_bn, note = check_same_world(meta, size, 16, "RUN")
        assert (sync_bn, note is not None) == allowed
        if note:
            assert f"resuming on {size}" in note and "global batch of 16" in note


# --------------------------------------------------------------------------- under mpiexec

@needs_mpi
def test_ranks_given_different_data_of_the_same_size_stop_with_one_line(tmp_path):
    out = ["--out", str(tmp_path / "run")]
    line = _one_error_line(_job([*TINY, "--data-seed", "0", *out], [*TINY, "--data-seed", "1", *out]))
    assert "the 2 ranks were started differently (train data digest: " in line
    assert "on rank 0" in line and "on rank 1" in line and "max_steps" not in line
    assert not (tmp_path / "run").exists()  # stopped before anything was written


@needs_mpi
@pytest.mark.parametrize("option, first, second, named", [
    ("--max-steps", "2", "3", "max_steps: 2 on rank 0, 3 on rank 1"),
    ("--train-size", "48", "32", "train data count: 48 on rank 0, 32 on rank 1"),
    ("--epochs", "2", "3", "epochs: 2 on rank 0, 3 on rank 1"),
])
def test_ranks_that_would_run_different_steps_stop_instead_of_hanging(tmp_path, option, first, second, named):
    out = ["--out", str(tmp_path / "run")]
    line = _one_error_line(_job([*TINY, option, first, *out], [*TINY, option, second, *out]))
    assert named in line, line


@needs_mpi
def test_a_set_up_error_every_rank_hits_is_said_once_without_mpi_abort(tmp_path):
    result = _job([*TINY, "--seed", "-1", "--out", str(tmp_path / "run")],
                  [*TINY, "--seed", "-1", "--out", str(tmp_path / "run")])
    assert _one_error_line(result) == "npxception train: error: --seed must be >= 0, got -1"
    assert result.returncode == 1


@needs_mpi
def test_a_set_up_error_of_one_rank_is_said_once_naming_the_rank(tmp_path):
    out = ["--out", str(tmp_path / "run")]
    line = _one_error_line(_job([*TINY, *out], [*TINY, "--threads", "0", *out]))
    assert line.startswith("npxception train: error: rank 1 of 2: --threads must be in [1, "), line


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """A 2-rank run without sync-BN stopped after one step."""
    if MPIEXEC is None or not HAVE_MPI4PY:
        pytest.skip("needs mpi4py and mpiexec (the mpi extra)")
    run = tmp_path_factory.mktemp("ranks") / "two"
    result = _bounded([MPIEXEC, "-n", "2", *NPX, *TINY, "--max-steps", "1", "--out", str(run)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert load_checkpoint(run)[1]["distributed"] == {"world_size": 2, "sync_bn": False, "reduction": "ring",
                                                      "bucket_mb": 4.0}
    return run


def test_a_two_rank_run_without_sync_bn_resumes_neither_on_one_process_nor_on_three(two_rank_run):
    """The same rule, and the same one line, for N = 1 as for N = 3."""
    before = (two_rank_run / "checkpoint.npz").read_bytes()
    resume = [*NPX, "train", "--resume", str(two_rank_run), "--quiet"]
    lines = {size: _one_error_line(_bounded(resume if size == 1 else [MPIEXEC, "-n", str(size), *resume]))
             for size in (1, 3)}
    for size, line in lines.items():
        assert line == (f"npxception train: error: {two_rank_run} was trained on 2 processes without --sync-bn: its "
                        "batch-norm statistics are over each process's share of the global batch of 16, and on "
                        f"{size} process{'es' if size > 1 else ''} they would change; resume it with mpiexec -n 2 "
                        f"npxception train --resume {two_rank_run}")
    assert (two_rank_run / "checkpoint.npz").read_bytes() == before


@needs_mpi
def test_a_one_process_run_resumes_on_two_ranks_with_sync_bn_and_says_so(tmp_path):
    run = tmp_path / "one"
    assert _bounded([*NPX, *TINY, "--max-steps", "1", "--out", str(run)]).returncode == 0
    result = _bounded([MPIEXEC, "-n", "2", *NPX, "train", "--resume", str(run), "--quiet", "--max-steps", "1"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count(f"note: {run} was trained on 1 process, resuming on 2") == 1, result.stderr
    assert "on 2 processes with sync-BN" in result.stdout
    meta = load_checkpoint(run)[1]
    assert (meta["epoch"], meta["batch"]) == (0, 2)
    assert meta["distributed"]["world_size"] == 2 and meta["distributed"]["sync_bn"] is True
